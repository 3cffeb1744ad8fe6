"""The webhook channel in-process: every call signed as Standard Webhooks says, verified
with the standardwebhooks package; the same webhook-id on every retry; Retry-After honoured."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from support.fake_services import FakeReceiver, Reply
from support.gitrepo import average_report
from support.pipeline import Pipeline

SECRET = "whsec_" + base64.b64encode(b"flawless-webhook-test-key-32byte").decode()
URLS = "https://hooks.one.test/flawless?token=q5ecr3t, https://hooks.two.test/in"


def webhook_pipeline(tmp_path, shop, one: FakeReceiver, two: FakeReceiver) -> Pipeline:
    # Receivers check webhook-timestamp against their own clock: the test's clock is now.
    return Pipeline(tmp_path, shop.path, {"hooks.one.test": one, "hooks.two.test": two},
                    now=time.time(), webhook_urls=URLS, webhook_secret=SECRET,
                    alert_channels="email,webhook").start()


def test_each_url_gets_the_alert_signed_and_verifiable(tmp_path, shop):
    one, two = FakeReceiver(), FakeReceiver()
    pipeline = webhook_pipeline(tmp_path, shop, one, two)
    pipeline.send(average_report())
    [first], [second] = one.deliveries, two.deliveries
    assert first.query == {"token": "q5ecr3t"}
    for request in (first, second):
        event = Webhook(SECRET).verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/json"
        assert event["type"] == "error.alert"
        data = event["data"]
        assert (data["exception_type"], data["filename"], data["line_number"],
                data["function_name"], data["count"]) == (
            "builtins.ZeroDivisionError", "shop/cart.py", 14, "average", 1)
        assert data["blame"]["author_email"] == "bob@example.org"
        assert data["blame"]["summary"] == "Add Cart.average"
        assert data["url"].startswith("http://flawless.test:8080/view_traceback?")
        assert data["recipients"] == ["bob@example.org"]
        assert [frame["blamed"] for frame in data["traceback"]][-1] is True
    assert first.headers["webhook-id"] != second.headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(first.body + b" ", first.headers)
    pipeline.stop()


def test_a_retry_carries_the_same_webhook_id_and_a_fresh_signature(tmp_path, shop):
    one, two = FakeReceiver(), FakeReceiver()
    one.script(Reply(500, b"oops"), Reply(503, b"busy", {"Retry-After": "20"}))
    pipeline = webhook_pipeline(tmp_path, shop, one, two)
    pipeline.send(average_report())
    pipeline.advance(3)
    assert len(one.deliveries) == 2, "the second attempt comes after the backoff"
    pipeline.advance(18)   # Retry-After: 20 from the second attempt, about 2s in
    assert len(one.deliveries) == 2, "Retry-After was not honoured"
    pipeline.advance(3)
    calls = one.deliveries
    assert len(calls) == 3 and len(two.deliveries) == 1
    assert len({call.headers["webhook-id"] for call in calls}) == 1
    assert len({call.body for call in calls}) == 1
    assert Webhook(SECRET).verify(calls[-1].body, calls[-1].headers)["type"] == "error.alert"
    [error] = [row["last_error"] for row in pipeline.query("SELECT last_error FROM outbox")
               if row["last_error"]] or [None]
    assert error is None  # delivered at last: the error is gone
    pipeline.stop()


def test_errors_never_show_the_secret_url(tmp_path, shop):
    one, two = FakeReceiver(), FakeReceiver()
    one.script(Reply(401, b"bad token q5ecr3t"))
    pipeline = webhook_pipeline(tmp_path, shop, one, two)
    pipeline.send(average_report())
    errors = [row["last_error"] for row in pipeline.query("SELECT last_error FROM outbox")
              if row["last_error"]]
    assert len(errors) == 1 and "HTTP 401" in errors[0]
    assert "q5ecr3t" not in errors[0] and "hooks.one.test" in errors[0]
    pipeline.stop()
