"""The pure rules of fixes by revision: which links name an error, and what an occurrence of
a resolved error means (a regression, or an old deployment still running)."""

from __future__ import annotations

from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flawless.report import Frame, Report
from flawless.server.core import alerting, fixes
from flawless.server.core.model import (AlertSettings, ErrorKey, FixCheck, Resolution,
                                        Rules, RoutingSettings)
from flawless.server.core.routing import RepoIndex, route
from flawless.server.git.porcelain import parse_fix_log

FIX = "f1" * 20
WITH_FIX = "a1" * 20
WITHOUT_FIX = "b2" * 20
LINK = ("https://flawless.example.com:8080/view_traceback?filename=shop%2Fcart.py&"
        "function_name=total&line_number=12&text=return+sum%28prices%29&timestamp=1")
RESOLVED = Resolution(resolved_at=100.0, source="a Fixes: trailer in " + FIX[:12],
                      fix_commit=FIX, fix_author_name="Bob Builder",
                      fix_author_email="bob@example.org")


@pytest.mark.parametrize("value, expected", [
    (LINK, ErrorKey("shop/cart.py", "total", "return sum(prices)")),
    (f"<{LINK}>", ErrorKey("shop/cart.py", "total", "return sum(prices)")),
    ("/view_traceback?filename=a.py&function_name=f", ErrorKey("a.py", "f", "")),
    ("http://x/api/error?filename=a.py&function_name=f&text=a++%3D+b", ErrorKey("a.py", "f",
                                                                               "a = b")),
    ("http://x/view_traceback?filename=a.py", None),             # no function
    ("http://x/view_traceback?filename=+&function_name=f", None),
    ("http://x/developer?filename=a.py&function_name=f", None),  # not an error's page
    ("1234567890ab (\"Fix the cart\")", None),                   # the kernel's kind of Fixes:
    ("#42", None), ("", None), ("http://x/view_traceback?" + "a=1&" * 5000, None),
    ("http://x/view_traceback?filename=a.py&function_name=f" + "&a=1" * 100, None),
    ("http://[::1/view_traceback?filename=a.py&function_name=f", None),
])
def test_error_link(value: str, expected: Optional[ErrorKey]) -> None:
    assert fixes.error_link(value) == expected


@given(st.text(max_size=300))
def test_error_link_takes_any_text_without_failing(value: str) -> None:
    key = fixes.error_link(value)
    assert key is None or (key.filename.strip() and key.function_name.strip())


def test_error_links_are_bounded_and_each_named_once() -> None:
    values = [LINK, LINK, "#3"] + [f"/view_traceback?filename=f{n}.py&function_name=g"
                                   for n in range(100)]
    found = fixes.error_links(values)
    assert len(found) == fixes.MAX_LINKS_PER_COMMIT and len(set(found)) == len(found)


@pytest.mark.parametrize("resolution, check, revision, regression, says", [
    (RESOLVED, FixCheck(FIX, WITH_FIX, True), WITH_FIX, True,
     f"regression: regressed in {WITH_FIX[:12]}, which contains the fix {FIX[:12]} by Bob "
     f"Builder (a Fixes: trailer in {FIX[:12]})"),
    (RESOLVED, FixCheck(FIX, WITHOUT_FIX, False), WITHOUT_FIX, False,
     f"old deployment: {WITHOUT_FIX[:12]} does not contain the fix {FIX[:12]} by Bob Builder "
     f"(a Fixes: trailer in {FIX[:12]}); counted, no alert"),
    (RESOLVED, FixCheck(FIX, None, None), "abc1234", True,
     "names a revision (abc1234) the repository does not know, so it cannot be told from an "
     "old deployment"),
    (RESOLVED, None, None, True, "names no revision, so it cannot be told"),
    (RESOLVED, FixCheck("c3" * 20, WITHOUT_FIX, False), WITHOUT_FIX, True,  # another fix
     "cannot be told from an old deployment"),
    (Resolution(resolved_at=1.0, source="the dashboard"), None, WITH_FIX, True,
     "regression: it happened again after it was resolved from the dashboard without naming "
     "a fix commit"),
])
def test_recurrence(resolution: Resolution, check: Optional[FixCheck],
                    revision: Optional[str], regression: bool, says: str) -> None:
    outcome = fixes.recurrence(resolution, check, revision)
    assert outcome.regression is regression and says in outcome.reason


def test_a_regression_reopens_and_old_deployments_are_counted() -> None:
    old = fixes.counted_as_old(RESOLVED, 3, FixCheck(FIX, WITHOUT_FIX, False), 200.0)
    old = fixes.counted_as_old(old, 2, FixCheck(FIX, "c3" * 20, False), 150.0)
    assert old.resolved and old.old_deployments == 5
    assert (old.old_deployment_revision, old.old_deployment_seen) == ("c3" * 20, 200.0)
    regressed = fixes.regressed(old, 300.0, FixCheck(FIX, WITH_FIX, True))
    assert not regressed.resolved and regressed.regressed_in == WITH_FIX
    assert regressed.regressed_at == 300.0 and regressed.fix_commit == FIX


def test_a_regression_alerts_the_line_author_and_the_fix_author_at_once() -> None:
    index = RepoIndex.from_paths(["shop/cart.py"])
    routed = route(Report("builtins.TypeError", "x", (Frame("/srv/shop/cart.py", 12, "total",
                                                            "return sum(prices)"),)),
                   index, Rules(), RoutingSettings())
    settings = AlertSettings(report_error_threshold=100, email_domain_name="example.com")
    regression = fixes.recurrence(RESOLVED, FixCheck(FIX, WITH_FIX, True), WITH_FIX)
    decision = alerting.decide_recurrence(routed, "alice@example.com", Rules(), settings,
                                          RESOLVED, regression)
    assert decision.alert and decision.regression == regression.detail
    assert [(r.email, r.reason.split(",")[0]) for r in decision.recipients] == [
        ("alice@example.com", "last changed shop/cart.py:12 (git blame)"),
        ("bob@example.org", f"wrote the fix {FIX[:12]} by Bob Builder (a Fixes: trailer in "
                            f"{FIX[:12]})")]
    old = fixes.recurrence(RESOLVED, FixCheck(FIX, WITHOUT_FIX, False), WITHOUT_FIX)
    quiet = alerting.decide_recurrence(routed, "alice@example.com", Rules(), settings,
                                       RESOLVED, old)
    assert not quiet.alert and quiet.regression is None
    assert [r.email for r in quiet.recipients] == ["alice@example.com"]


def test_parse_fix_log() -> None:
    output = (f"{FIX}\x1fBob Builder\x1fbob@example.org\x1f{LINK}\x1e#3\x00\n"
              f"{WITH_FIX}\x1fAlice\x1falice@example.com\x1f\x00garbage\x1fonly\x00").encode()
    [(first, values), (second, none)] = parse_fix_log(output)
    assert (first.sha, first.author_name, first.author_email) == (FIX, "Bob Builder",
                                                                  "bob@example.org")
    assert values == (LINK, "#3") and second.sha == WITH_FIX and none == ()
