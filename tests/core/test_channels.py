"""The pure rules of channels: routing per path, hourly bounds, comment intervals, names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flawless.server.core.bounds import HourlyBounds, hour_end, hour_start
from flawless.server.core.channels import (choose_channels, error_fingerprint,
                                           issue_update_due, url_destination)
from flawless.server.core.model import ChannelRule, ErrorKey
from flawless.server.core.redaction import redact, secret_url_parts
from flawless.server.core.signing import secret_key, signature

ALL = frozenset({"email", "slack", "webhook", "github", "gitlab"})
RULES = (ChannelRule("shop", ("email", "slack"), "channels.yaml:1"),
         ChannelRule("shop/payments", ("github",), "channels.yaml:3"),
         ChannelRule("vendor/lib.py", ("gitlab", "email"), "channels.yaml:5"))


def test_the_most_specific_rule_chooses_else_the_default() -> None:
    def chosen(path: str) -> tuple[str, ...]:
        return choose_channels(path, RULES, ("email",), ALL).channels
    assert chosen("app.py") == ("email",)
    assert chosen("shop/cart.py") == ("email", "slack")
    assert chosen("shop/payments/card.py") == ("github",)
    assert chosen("shop/paymentsx.py") == ("email", "slack")
    assert chosen("vendor/lib.py") == ("gitlab", "email")
    assert chosen("vendor/lib.pyc") == ("email",)


def test_unconfigured_channels_are_left_out_and_said_so() -> None:
    choice = choose_channels("shop/cart.py", RULES, ("email",), frozenset({"email"}))
    assert choice.channels == ("email",)
    assert choice.explanation == ("alerts go to email (channels.yaml (channels.yaml:1) for shop)",
                                  "slack is not configured: left out")
    nothing = choose_channels("shop/payments/x.py", RULES, ("email",), frozenset({"email"}))
    assert nothing.channels == () and "no channel" in nothing.explanation[0]


def test_a_later_rule_for_the_same_path_wins() -> None:
    rules = (ChannelRule("shop", ("slack",)), ChannelRule("shop", ("webhook",)))
    assert choose_channels("shop/a.py", rules, (), ALL).channels == ("webhook",)


@given(st.integers(0, 10), st.integers(0, 10), st.integers(0, 12), st.integers(0, 12))
def test_bounds_admit_below_each_bound_and_zero_means_none(per_destination: int,
                                                             per_channel: int, sent_to: int,
                                                             sent_all: int) -> None:
    admitted = HourlyBounds(per_destination, per_channel).admits(sent_to, sent_all)
    assert admitted == ((per_destination == 0 or sent_to < per_destination)
                        and (per_channel == 0 or sent_all < per_channel))


@given(st.floats(0, 4e9))
def test_hours_are_wall_clock_hours(moment: float) -> None:
    start = hour_start(moment)
    assert start <= moment < hour_end(moment) == start + 3600 and start % 3600 == 0


def test_issue_comments_wait_for_the_interval() -> None:
    assert issue_update_due(None, 100.0, 3600.0)
    assert not issue_update_due(100.0, 3699.0, 3600.0)
    assert issue_update_due(100.0, 3700.0, 3600.0)


def test_fingerprints_and_destinations_are_stable_and_reveal_nothing() -> None:
    key = ErrorKey("shop/cart.py", "average", "return x / y")
    assert error_fingerprint(key) == error_fingerprint(ErrorKey(*key.__dict__.values()))
    assert error_fingerprint(key) != error_fingerprint(ErrorKey("shop/cart.py", "average", ""))
    url = "https://hooks.slack.com/services/T0/B0/s3cr3tT0ken?x=s3cr3tQuery"
    name = url_destination(url)
    assert name.startswith("hooks.slack.com#") and "s3cr3t" not in name
    assert name == url_destination(url) != url_destination(url + "2")
    shown = redact(f"POST {url} failed; path /services/T0/B0/s3cr3tT0ken; q s3cr3tQuery",
                   secret_url_parts(url))
    assert "s3cr3t" not in shown and "POST *** failed" in shown


def test_webhook_signatures_follow_standard_webhooks() -> None:
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert key == secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    # The example of the Standard Webhooks specification.
    assert signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    for bad in ("", "not base64!", "whsec_" + "QUFB"):
        try:
            secret_key(bad)
        except ValueError as error:
            assert bad not in str(error) or not bad
        else:
            raise AssertionError(f"{bad!r} was accepted")
