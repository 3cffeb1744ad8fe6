"""The pure alerting core: thresholds, known errors, addresses and recipients."""

from __future__ import annotations

import datetime
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flawless.report import ChainedException, Frame, Report
from flawless.server.core.alerting import author_address, decide, explain, should_alert
from flawless.server.core.model import (AlertSettings, Decision, Disownership, KnownError, LineRule,
                                        Route, RoutingSettings, Rules, Watch)
from flawless.server.core.routing import RepoIndex, route
from flawless.server.core.text import is_valid_address

REPO = RepoIndex.from_paths(["shop/cart.py", "shop/legacy/old.py", "shop/util/money.py",
                             "app.py"])
SETTINGS = AlertSettings(report_error_threshold=3, email_domain_name="example.com",
                         default_contact="oncall@example.com")
MAIN = Frame("/srv/app/app.py", 5, "main", "run()")
CART = Frame("/srv/app/shop/cart.py", 42, "add_item", "total += price")
LEGACY = Frame("/srv/app/shop/legacy/old.py", 7, "compute", "x / y")
LIBRARY = Frame("/venv/lib/site-packages/requests/api.py", 3, "get", "raise X()")
NOV_2026 = datetime.datetime(2026, 11, 2, 10, tzinfo=datetime.timezone.utc).timestamp()


def routed(*frames: Frame, rules: Rules = Rules()) -> Route:
    report = Report("builtins.ValueError", "boom", tuple(frames))
    return route(report, REPO, rules, RoutingSettings())


def decide_for(route_: Route, author: Optional[str] = "alice@example.com", *, rules=Rules(),
               before: int = 0, after: int = 3, alerted: bool = False,
               threshold: Optional[int] = None, settings: AlertSettings = SETTINGS,
               timestamp: Optional[float] = NOV_2026) -> Decision:
    return decide(route_, author, timestamp, before, after, alerted, threshold, rules, settings)


def emails(decision: Decision) -> list[str]:
    return [recipient.email for recipient in decision.recipients]


# -- thresholds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, alerted, expected", [
    (0, 1, False, False),
    (1, 2, False, False),
    (2, 3, False, True),
    (0, 3, False, True),
    (0, 100, False, True),     # a jump over the threshold alerts
    (2, 3, True, False),       # only once
    (3, 4, False, False),      # past the threshold: the moment has gone
])
def test_normal_error_threshold(before: int, after: int, alerted: bool, expected: bool) -> None:
    assert should_alert(before, after, 3, None, alerted)[0] is expected


def known(low=None, high=None, every=None) -> KnownError:
    return KnownError("shop/cart.py", min_alert_threshold=low, max_alert_threshold=high,
                      alert_every_n_occurrences=every, source="known_errors.yaml:1")


@pytest.mark.parametrize("entry, before, after, expected", [
    (known(low=10), 8, 9, False),
    (known(low=10), 9, 10, True),
    (known(low=10), 5, 50, True),
    (known(low=10), 10, 11, False),
    (known(every=100), 99, 100, True),
    (known(every=100), 100, 101, False),
    (known(every=100), 150, 420, True),    # several multiples at once: one alert
    (known(every=100), 150, 199, False),
    (known(low=5, every=100, high=250), 199, 200, True),
    (known(low=5, every=100, high=250), 299, 300, False),  # above max: never
    (known(low=5, high=250), 240, 260, False),
    (known(low=1, every=1, high=0), 0, 1, False),  # max 0 silences
    (known(), 0, 1000, False),                       # nothing set: never
    (known(low=3), 2, 3, True),                      # the normal threshold does not apply
])
def test_known_error_thresholds(entry: KnownError, before: int, after: int,
                                expected: bool) -> None:
    alert, reason = should_alert(before, after, 3, entry, already_alerted=True)
    assert alert is expected
    assert "known_errors.yaml:1" in reason


def run(counts: list[int], threshold: int, entry: Optional[KnownError]) -> list[bool]:
    """Alerts over a sequence of error counts, as the processor records them."""
    alerts, before, alerted = [], 0, False
    for after in counts:
        alert, _ = should_alert(before, after, threshold, entry, alerted)
        alerts.append(alert)
        alerted = alerted or alert
        before = after
    return alerts


increments = st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40)


def cumulative(steps: list[int]) -> list[int]:
    total, counts = 0, []
    for step in steps:
        total += step
        counts.append(total)
    return counts


@given(increments, st.integers(min_value=1, max_value=100))
def test_a_normal_error_alerts_exactly_once_when_its_count_crosses_the_threshold(
        steps: list[int], threshold: int) -> None:
    counts = cumulative(steps)
    alerts = run(counts, threshold, None)
    assert sum(alerts) == (1 if counts[-1] >= threshold else 0)
    if any(alerts):
        at = alerts.index(True)
        assert counts[at] >= threshold and (at == 0 or counts[at - 1] < threshold)


@given(increments, st.integers(min_value=1, max_value=20), st.integers(min_value=0, max_value=200))
def test_a_known_error_never_alerts_above_its_max(steps: list[int], every: int,
                                                  high: int) -> None:
    counts = cumulative(steps)
    alerts = run(counts, 3, known(low=1, every=every, high=high))
    assert not any(alert for alert, count in zip(alerts, counts) if count > high)


@given(increments, st.integers(min_value=1, max_value=30))
def test_alert_every_n_alerts_once_per_step_that_reaches_a_new_multiple(
        steps: list[int], every: int) -> None:
    counts = cumulative(steps)
    alerts = run(counts, 3, known(every=every))
    previous = [0] + counts[:-1]
    crossing = [after // every > before // every for before, after in zip(previous, counts)]
    assert alerts == crossing
    assert sum(alerts) <= counts[-1] // every  # never more than the multiples crossed


# -- addresses ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, valid", [
    ("alice@example.com", True),
    ("first.last+tag@mail.example.co.uk", True),
    ("dev@team.engineering", True),
    ("x@xn--bcher-kva.xn--p1ai", True),
    ("o'brien@example.ie", True),
    ("", False),
    ("alice", False),
    ("alice@", False),
    ("@example.com", False),
    ("alice@localhost", False),
    ("alice@@example.com", False),
    ("a@b@example.com", False),
    ("alice smith@example.com", False),
    ("alice@example.com\r\nBcc: evil@example.com", False),
    ("alice@example.com\n", False),
    ("Alice <alice@example.com>", False),
    ("alice@example.com, bob@example.com", False),
    ("alice.@example.com", False),
    ("al..ice@example.com", False),
    ("alice@-example.com", False),
    ("alice@example.c", False),
    ("alice@example.123", False),
    ("a" * 65 + "@example.com", False),
])
def test_is_valid_address(text: str, valid: bool) -> None:
    assert is_valid_address(text) is valid


@pytest.mark.parametrize("email, settings, expected", [
    ("alice@example.org", SETTINGS, "alice@example.org"),
    ("alice", SETTINGS, "alice@example.com"),
    ("alice@", SETTINGS, "alice@example.com"),
    ("alice@laptop", SETTINGS, "alice@example.com"),
    (" alice@example.org ", SETTINGS, "alice@example.org"),
    ("alice@example.org", AlertSettings(email_domain_name="corp.example",
                                        ignore_vcs_email_domain=True), "alice@corp.example"),
    ("alice@laptop", AlertSettings(), "alice@laptop"),  # no domain configured: unchanged
])
def test_author_address(email: str, settings: AlertSettings, expected: str) -> None:
    assert author_address(email, settings) == expected


# -- decide -------------------------------------------------------------------------------------

def test_the_blamed_author_gets_the_alert_at_the_threshold() -> None:
    decision = decide_for(routed(MAIN, CART), before=2, after=3)
    assert decision.alert
    assert emails(decision) == ["alice@example.com"]
    assert "shop/cart.py:42" in decision.recipients[0].reason


def test_below_the_threshold_no_alert_but_the_recipients_are_known() -> None:
    decision = decide_for(routed(CART), before=0, after=1)
    assert not decision.alert
    assert emails(decision) == ["alice@example.com"]


def test_a_report_may_raise_the_configured_threshold_but_never_lower_it() -> None:
    assert not decide_for(routed(CART), before=2, after=3, threshold=7).alert
    assert decide_for(routed(CART), before=6, after=7, threshold=7).alert
    assert not decide_for(routed(CART), before=0, after=1, threshold=1).alert
    assert not decide_for(routed(CART), before=1, after=2, threshold=2).alert
    lowered = decide_for(routed(CART), before=2, after=3, threshold=1)
    assert lowered.alert and "threshold of 3" in lowered.reason


@given(st.integers(0, 50), st.integers(1, 50), st.one_of(st.none(), st.integers(1, 50)))
def test_no_report_threshold_alerts_before_the_configured_one(before: int, step: int,
                                                              threshold: Optional[int]) -> None:
    decision = decide_for(routed(CART), before=before, after=before + step, threshold=threshold)
    assert not decision.alert or before + step >= SETTINGS.report_error_threshold


def test_minimum_date_suppresses_alerts_for_old_commits() -> None:
    settings = AlertSettings(report_only_after_minimum_date=datetime.date(2026, 11, 3))
    old = decide_for(routed(CART), settings=settings)
    assert not old.alert and "2026-11-03" in old.reason
    later = AlertSettings(report_only_after_minimum_date=datetime.date(2026, 11, 2))
    assert decide_for(routed(CART), settings=later).alert


def test_an_unblamable_error_goes_to_the_default_contact() -> None:
    decision = decide_for(routed(LIBRARY), author=None)
    assert decision.alert
    assert emails(decision) == ["oncall@example.com"]
    assert "no line of the repository" in decision.recipients[0].reason


def test_a_failed_blame_goes_to_the_default_contact() -> None:
    decision = decide_for(routed(CART), author=None)
    assert emails(decision) == ["oncall@example.com"]


def test_author_without_domain_gets_the_configured_domain() -> None:
    assert emails(decide_for(routed(CART), author="bob")) == ["bob@example.com"]


def test_watchers_of_a_directory_and_of_every_error() -> None:
    rules = Rules(watched_files=(
        Watch("blamed-dir@example.com", "shop", False, "watched_files.yaml:1"),
        Watch("app-all@example.com", "app.py", True, "watched_files.yaml:4"),
        Watch("app-blamed@example.com", "app.py", False, "watched_files.yaml:7"),
        Watch("prefix@example.com", "sho", True, "watched_files.yaml:10"),
    ))
    decision = decide_for(routed(MAIN, CART), rules=rules)
    assert emails(decision) == ["alice@example.com", "blamed-dir@example.com",
                                "app-all@example.com"]
    assert "watched_files.yaml:1" in decision.recipients[1].reason


def test_watching_every_error_covers_the_lines_of_the_chained_exceptions() -> None:
    rules = Rules(watched_files=(
        Watch("legacy-all@example.com", "shop/legacy", True, "watched_files.yaml:2"),))
    cause = ChainedException("builtins.ValueError", "bad amount", (
        Frame("/srv/app/shop/cart.py", 8, "pay", "amount = convert(text)"),
        Frame("/srv/app/shop/legacy/old.py", 3, "convert", "return money(text)"),
        Frame("/srv/app/shop/util/money.py", 3, "money", "return Decimal(text)")))
    outer = Report("shop.PaymentError", "failed", (MAIN, Frame("/srv/app/shop/cart.py", 9,
                                                              "pay", "raise PaymentError()")),
                   chained=(cause,))
    chained = route(outer, REPO, rules, RoutingSettings())
    assert chained.blamed.repo_path == "shop/util/money.py"
    assert emails(decide_for(chained, rules=rules)) == ["alice@example.com",
                                                        "legacy-all@example.com"]


def test_disownership_plus_remapping() -> None:
    rules = Rules(
        disownership=(Disownership("alice@example.com", "shop/legacy", "carol@example.com",
                                   "disownership.yaml:1"),),
        email_remapping={"alice@old.example": "alice@example.com",
                         "carol": "carol.danvers@example.net"},
        email_remapping_sources={"alice@old.example": "email_remapping.yaml:1",
                                 "carol": "email_remapping.yaml:2"})
    # the git address is remapped to the one disownership names, the designated one remapped
    legacy = decide_for(routed(LEGACY), author="alice@old.example", rules=rules)
    assert emails(legacy) == ["carol.danvers@example.net"]
    reason = legacy.recipients[0].reason
    assert "disownership.yaml:1" in reason and "email_remapping.yaml:2" in reason
    # outside the disowned directory: alice, remapped once
    cart = decide_for(routed(CART), author="ALICE@old.example", rules=rules)
    assert emails(cart) == ["alice@example.com"]
    assert "email_remapping.yaml:1" in cart.recipients[0].reason


def test_remapping_is_applied_once_not_in_chains() -> None:
    rules = Rules(email_remapping={"a@example.com": "b@example.com",
                                   "b@example.com": "c@example.com"})
    assert emails(decide_for(routed(CART), author="a@example.com", rules=rules)) == \
        ["b@example.com"]


def test_known_error_recipients_header_and_thresholds() -> None:
    entry = KnownError("shop/cart.py", min_alert_threshold=10,
                       email_recipients=("team@example.com", "ALICE@example.com"),
                       email_header="Ticket SHOP-1", source="known_errors.yaml:2")
    route_ = routed(CART, rules=Rules(known_errors=(entry,)))
    assert not decide_for(route_, before=2, after=3, rules=Rules(known_errors=(entry,))).alert
    decision = decide_for(route_, before=9, after=10, alerted=True)
    assert decision.alert and decision.email_header == "Ticket SHOP-1"
    assert emails(decision) == ["alice@example.com", "team@example.com"]  # de-duplicated
    assert "known_errors.yaml:2" in decision.recipients[1].reason


def test_invalid_recipients_are_rejected_without_crashing() -> None:
    rules = Rules(email_remapping={"alice": "not an address"},
                  watched_files=(Watch("ok@example.com", "shop", True, "watched_files.yaml:1"),))
    decision = decide_for(routed(CART), rules=rules)
    assert decision.alert
    assert emails(decision) == ["ok@example.com"]
    assert [address for address, _ in decision.rejected] == ["not an address"]


def test_default_contact_when_no_valid_recipient_remains() -> None:
    decision = decide_for(routed(CART), author="bob@laptop", settings=AlertSettings(
        default_contact="oncall@example.com"))
    assert emails(decision) == ["oncall@example.com"]
    assert decision.rejected == (("bob@laptop", decision.rejected[0][1]),)
    assert "no valid recipient" in decision.recipients[0].reason


def test_rejections_are_only_reported_when_alerting() -> None:
    decision = decide_for(routed(CART), author="bob@laptop", before=0, after=1,
                          settings=AlertSettings(default_contact="oncall@example.com"))
    assert not decision.alert and decision.rejected == ()


def test_a_dropped_report_never_alerts() -> None:
    rules = Rules(ignored_exceptions=("ValueError",))
    decision = decide_for(routed(CART, rules=rules), rules=rules)
    assert not decision.alert and decision.recipients == ()


def test_explain_lists_every_decision() -> None:
    block = LineRule("shop/cart.py", source="building_blocks.yaml:1")
    rules = Rules(building_blocks=(block,))
    route_ = routed(MAIN, CART, rules=rules)
    text = explain(route_, decide_for(route_, rules=rules))
    lines = text.splitlines()
    assert "building_blocks.yaml:1" in lines[0]
    assert lines[1].startswith("blamed app.py:5 in main")
    assert lines[2].startswith("alert: reached the threshold of 3")
    assert lines[3].startswith("to alice@example.com: last changed app.py:5")
