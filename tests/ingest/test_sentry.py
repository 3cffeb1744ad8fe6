"""Sentry's store and envelope endpoints in-process: the protocol's answers, keys, bodies
(gzip, deflate, bombs), hostile envelopes, rate limits, CORS, and what ends up stored."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flawless.server.core.envelope import MAX_ITEMS
from flawless.server.storage.records import StorageUnavailable
from support.http import Exchange, raw_request
from support.reportport import ReportPort

EVENT_ID = "aa1a4f9a68c04be7bc867c2ca6b8c6ba"
ENVELOPE_PATH = "/api/1/envelope/"
STORE_PATH = "/api/1/store/"
AUTH = {"X-Sentry-Auth": "Sentry sentry_key=public-key, sentry_version=7"}


def event(**extra: Any) -> dict:
    frame = {"filename": "cart.py", "abs_path": "/srv/app/shop/cart.py", "function": "average",
             "lineno": 14, "context_line": "return self.total() / len(self.items)",
             "in_app": True, "vars": {"db_password": "'CANARY-PW'", "qty": "3",
                                      "note": "'card 4111 1111 1111 1111'"}}
    return {"event_id": EVENT_ID, "platform": "python", "level": "error",
            "server_name": "web-3", "exception": {"values": [
                {"type": "ZeroDivisionError", "value": "division by zero",
                 "stacktrace": {"frames": [frame]}}]}, **extra}


def envelope(*items: tuple[str, bytes], header: dict = None) -> bytes:
    lines = [json.dumps(header if header is not None else {"event_id": EVENT_ID}).encode()]
    for kind, payload in items:
        lines += [json.dumps({"type": kind, "length": len(payload)}).encode(), payload]
    return b"\n".join(lines) + b"\n"


def event_envelope(**extra: Any) -> bytes:
    return envelope(("event", json.dumps(event(**extra)).encode()),
                    ("session", b'{"sid":"1","status":"exited"}'),
                    ("client_report", b'{"discarded_events":[]}'))


@pytest.fixture
def port(tmp_path) -> ReportPort:
    return ReportPort(tmp_path)


def test_an_envelope_event_is_stored_as_a_report_and_answered_with_its_id(port):
    port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH)
    response = port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH)
    assert response.status == 200 and port.json(response) == {"id": EVENT_ID}
    reports = port.stored_reports()
    assert len(reports) == 2  # one per envelope: the session and client report are dropped
    report = reports[0]
    assert report.exception_type == "builtins.ZeroDivisionError"
    assert report.hostname == "web-3"
    frame = report.traceback[0]
    assert (frame.filename, frame.line_number, frame.function_name, frame.in_app) == \
        ("/srv/app/shop/cart.py", 14, "average", True)


def test_the_answer_waits_for_the_commit(port):
    exchange = Exchange(port.site).send(raw_request("POST", ENVELOPE_PATH, event_envelope(),
                                                    AUTH))
    assert not exchange.answered()
    port.writer.run_all()
    assert exchange.response().status == 200 and port.storage.inbox_depth() == 1


def test_locals_and_messages_are_scrubbed_like_the_python_clients(port):
    port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH)
    stored = port.storage._query("SELECT payload FROM inbox")[0]["payload"].decode()
    assert "CANARY-PW" not in stored and "4111 1111 1111 1111" not in stored
    frame_locals = port.stored_reports()[0].traceback[0].frame_locals
    assert frame_locals["qty"] == "3" and frame_locals["db_password"] == "<scrubbed>"


def test_the_store_endpoint_takes_one_event(port):
    response = port.send("POST", STORE_PATH, json.dumps(event()).encode(),
                         {**AUTH, "Content-Type": "application/json"})
    assert response.status == 200 and port.json(response) == {"id": EVENT_ID}
    assert port.storage.inbox_depth() == 1


def test_an_envelope_without_events_is_accepted_and_stores_nothing(port):
    body = envelope(("session", b"{}"), ("transaction", b'{"type":"transaction"}'),
                    ("attachment", b"\x00\x01binary\n"), header={})
    response = port.send("POST", ENVELOPE_PATH, body, AUTH)
    assert response.status == 200 and port.json(response) == {}
    assert port.storage.inbox_depth() == 0 and port.writer.queued == []


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4])])  # raw deflate, as some SDKs send
def test_gzip_and_deflate_bodies(port, encoding, compress):
    response = port.send("POST", ENVELOPE_PATH, compress(event_envelope()),
                         {**AUTH, "Content-Encoding": encoding})
    assert response.status == 200 and port.storage.inbox_depth() == 1


def test_a_compression_bomb_is_413_and_a_cut_stream_400(port):
    bomb = gzip.compress(b"\n" * (50 * 1024 * 1024))
    assert len(bomb) < 100_000
    response = port.send("POST", ENVELOPE_PATH, bomb, {**AUTH, "Content-Encoding": "gzip"})
    assert response.status == 413
    cut = gzip.compress(event_envelope())[:-20]
    response = port.send("POST", ENVELOPE_PATH, cut, {**AUTH, "Content-Encoding": "gzip"})
    assert response.status == 400 and b"cut short" in response.body
    brotli_bomb = brotli.compress(b"\n" * (50 * 1024 * 1024))
    response = port.send("POST", ENVELOPE_PATH, brotli_bomb, {**AUTH, "Content-Encoding": "br"})
    assert response.status == 413
    cut = brotli.compress(event_envelope())[:-5]
    response = port.send("POST", ENVELOPE_PATH, cut, {**AUTH, "Content-Encoding": "br"})
    assert response.status == 400 and b"br" in response.body
    response = port.send("POST", ENVELOPE_PATH, b"x", {**AUTH, "Content-Encoding": "zstd"})
    assert response.status == 400 and b"gzip, deflate or br" in response.body
    assert port.storage.inbox_depth() == 0


def test_a_body_over_the_limit_is_413(tmp_path):
    port = ReportPort(tmp_path, max_body=4096)
    big = event_envelope(extra={"blob": "x" * 5000})
    assert port.send("POST", ENVELOPE_PATH, big, AUTH).status == 413


HOSTILE = {
    "truncated": envelope(("event", json.dumps(event()).encode()))[:-40],
    "wrong length": b'{}\n{"type":"event","length":5}\n' + json.dumps(event()).encode() + b"\n",
    "unknown item type": envelope(("hologram", b"{}")),
    "10k items": envelope(*[("session", b"{}")] * 10_000),
    "header not an object": b"[]\n",
    "event not JSON": envelope(("event", b"{not json")),
    "event not an object": envelope(("event", b"[1, 2]")),
    "deeply nested event": envelope(("event", b"[" * 50_000 + b"]" * 50_000)),
    "empty": b"",
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_envelope_is_a_4xx_naming_the_problem_and_stores_nothing(port, name):
    response = port.send("POST", ENVELOPE_PATH, HOSTILE[name], AUTH)
    assert 400 <= response.status < 500, (name, response.status, response.body)
    assert port.json(response)["detail"]
    assert port.storage.inbox_depth() == 0
    assert port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH).status == 200


def test_more_events_than_items_allowed_is_refused(port):
    body = envelope(*[("event", json.dumps(event()).encode())] * (MAX_ITEMS + 1))
    assert port.send("POST", ENVELOPE_PATH, body, AUTH).status == 400


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000) | st.lists(st.tuples(
    st.sampled_from(["event", "session", "attachment", "bogus"]),
    st.binary(max_size=200)), max_size=5).map(lambda items: envelope(*items)))
def test_any_body_gets_a_2xx_or_4xx_never_a_5xx(port, body):
    status = port.send("POST", ENVELOPE_PATH, body, AUTH).status
    assert 200 <= status < 500


def test_keys_from_the_auth_header_or_the_query_when_keys_are_required(tmp_path):
    port = ReportPort(tmp_path, keys=("public-key",))
    assert port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH).status == 200
    assert port.send("POST", ENVELOPE_PATH + "?sentry_key=public-key&sentry_version=7",
                     event_envelope()).status == 200
    assert port.send("POST", STORE_PATH, json.dumps(event()).encode(),
                     {"Authorization": "Sentry sentry_key=public-key"}).status == 200
    # Refused before the body is read: a key in the envelope's header comes too late.
    with_dsn = envelope(("event", json.dumps(event()).encode()),
                        header={"dsn": "http://public-key@127.0.0.1:9028/1"})
    assert port.send("POST", ENVELOPE_PATH, with_dsn).status == 401
    assert port.send("POST", ENVELOPE_PATH, event_envelope(),
                     {"X-Sentry-Auth": "Sentry sentry_key=guess"}).status == 401
    assert port.send("POST", ENVELOPE_PATH, event_envelope()).status == 401
    assert port.storage.inbox_depth() == 3


def test_over_the_rate_429_with_retry_after_and_sentry_rate_limits(tmp_path):
    port = ReportPort(tmp_path, keys=("public-key",), per_key=2)
    statuses = [port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH).status
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH)
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-Sentry-Rate-Limits"] == "1::key"
    port.clock.advance(1.0)
    assert port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH).status == 200


def test_a_storage_failure_is_503_and_nothing_is_accepted(port, monkeypatch):
    def full(*args: Any) -> None:
        raise StorageUnavailable("database or disk is full")

    monkeypatch.setattr(port.storage, "add_to_inbox", full)
    response = port.send("POST", ENVELOPE_PATH, event_envelope(), AUTH)
    assert response.status == 503 and response.headers["Retry-After"] == "5"


def test_pages_of_other_origins_are_refused_allowed_ones_get_their_origin_back(tmp_path):
    port = ReportPort(tmp_path, allowed_origins=("http://shop.example",))
    allowed = port.send("POST", ENVELOPE_PATH, event_envelope(),
                        {**AUTH, "Origin": "http://shop.example"})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert allowed.headers["Vary"] == "Origin"
    assert "X-Sentry-Rate-Limits" in allowed.headers["Access-Control-Expose-Headers"]
    refused = port.send("POST", ENVELOPE_PATH, event_envelope(),
                        {**AUTH, "Origin": "http://evil.example"})
    assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers
    preflight = port.send("OPTIONS", ENVELOPE_PATH, b"", {"Origin": "http://shop.example"})
    assert preflight.status == 204
    assert port.storage.inbox_depth() == 1


@pytest.mark.parametrize("path, status", [("/api/x/envelope/", 404), ("/api/1/events/", 404),
                                          ("/api/1/envelope/extra/", 404)])
def test_other_paths_are_404(port, path, status):
    assert port.send("POST", path, event_envelope(), AUTH).status == status


def test_a_get_is_405(port):
    assert port.send("GET", ENVELOPE_PATH).status == 405


def test_the_chain_tags_request_level_and_user_id_are_stored_with_the_report(port):
    cause = {"type": "KeyError", "value": "'sku'", "module": None,
             "stacktrace": {"frames": [{"abs_path": "/srv/app/shop/stock.py", "lineno": 3,
                                        "function": "reserve", "context_line": "x[sku]"}]}}
    extra = {"level": "warning", "tags": {"component": "billing"},
             "user": {"id": "42", "email": "ann@example.com", "ip_address": "192.0.2.1"},
             "request": {"method": "POST", "url": "https://shop.example/cart?card=4111",
                         "headers": {"User-Agent": "curl/8", "Cookie": "session=s3cret"}}}
    body = event(**extra)
    body["exception"]["values"].insert(0, cause)
    port.send("POST", STORE_PATH, json.dumps(body).encode(), AUTH)
    [report] = port.stored_reports()
    assert report.level == "warning" and report.tags == {"component": "billing"}
    assert report.user_id == "42"
    assert (report.request.method, report.request.url, dict(report.request.headers)) == (
        "POST", "https://shop.example/cart", {"User-Agent": "curl/8"})
    [chained] = report.chained
    assert chained.exception_type == "builtins.KeyError"
    assert chained.traceback[0].filename == "/srv/app/shop/stock.py"
    stored = port.storage._query("SELECT payload FROM inbox")[0]["payload"].decode()
    assert "ann@example.com" not in stored and "192.0.2.1" not in stored
    assert "s3cret" not in stored and "4111" not in stored
