"""The wire as CONTRACT §3 states it, against the real server on a loopback port."""

from __future__ import annotations

import gzip
import json
import socket

import pytest

from support.server import start_server

REPORT = {"exception_type": "builtins.ValueError", "exception_message": "bad",
          "traceback": [{"filename": "/srv/app/shop/cart.py", "line_number": 7,
                         "function_name": "add_item", "text": "raise ValueError()"}]}
KEY = "k-3f9a"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = start_server(tmp_path_factory.mktemp("wire"), ingest_keys=f"{KEY}, other-key",
                           max_body_bytes=65536)
    yield process
    process.stop()


def auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def rpc(method, params=None, request_id=1):
    payload = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        payload["params"] = params
    return payload


def post_json(server, payload, headers=None, **options):
    status, response_headers, body = server.post(json.dumps(payload).encode(),
                                                 headers if headers is not None else auth(),
                                                 **options)
    is_json = response_headers.get("Content-Type", "").startswith("application/json")
    return status, response_headers, (json.loads(body) if body and is_json else body)


def test_ping(server):
    assert post_json(server, rpc("ping"))[2] == {"jsonrpc": "2.0", "id": 1, "result": True}


def test_record_error_is_accepted_once_stored(server):
    status, _, answer = post_json(server, rpc("record_error", {"report": REPORT}, "a"))
    assert status == 200
    assert answer == {"jsonrpc": "2.0", "id": "a", "result": {"accepted": True}}


def test_missing_or_wrong_key_is_401(server):
    assert post_json(server, rpc("ping"), headers={})[0] == 401
    assert post_json(server, rpc("ping"), headers=auth("nope"))[0] == 401
    assert post_json(server, rpc("ping"), headers={"Authorization": KEY})[0] == 401
    assert post_json(server, rpc("ping"), headers=auth("other-key"))[0] == 200


def test_body_over_the_limit_is_413(server):
    huge = dict(REPORT, exception_message="x" * 70000)
    assert post_json(server, rpc("record_error", {"report": huge}))[0] == 413


def test_gzip_bodies_are_accepted_and_bounded_after_decompression(server):
    status, _, answer = post_json(server, rpc("record_error", {"report": REPORT}),
                                  gzip_body=True)
    assert (status, answer["result"]) == (200, {"accepted": True})
    bomb = dict(REPORT, exception_message="x" * 500000)
    body = gzip.compress(json.dumps(rpc("record_error", {"report": bomb})).encode())
    assert len(body) < 65536
    status, _, _ = server.post(body, {**auth(), "Content-Encoding": "gzip"})
    assert status == 413


def test_a_declared_length_over_the_limit_is_413_without_reading_it(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall((f"POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                            "Content-Type: application/json\r\nContent-Length: 999999999\r\n"
                            "\r\n").encode())
        connection.sendall(b"{" * 70000)
        answer = connection.recv(200)
    assert answer.startswith(b"HTTP/1.1 413")


def test_malformed_json_is_32700(server):
    status, _, body = server.post(b'{"jsonrpc": "2.0", "method": ', auth())
    assert status == 200
    assert json.loads(body)["error"]["code"] == -32700


def test_unknown_method_is_32601(server):
    answer = post_json(server, rpc("delete_everything"))[2]
    assert answer["error"]["code"] == -32601


def test_invalid_report_is_32602_naming_each_bad_field(server):
    bad = dict(REPORT, traceback=[{"filename": "a.py", "line_number": -1,
                                   "function_name": "f"}], error_count="many")
    del bad["exception_type"]
    answer = post_json(server, rpc("record_error", {"report": bad}))[2]
    assert answer["error"]["code"] == -32602
    assert answer["error"]["data"] == {
        "exception_type": "is required",
        "traceback[0].line_number": "must be >= 1",
        "error_count": "must be an integer",
    }


def test_missing_params_is_32602(server):
    answer = post_json(server, rpc("record_error", {"not_report": 1}))[2]
    assert answer["error"]["code"] == -32602
    assert "params" in answer["error"]["data"]


def test_invalid_request_object_is_32600(server):
    answer = post_json(server, {"method": "ping", "id": 3})[2]
    assert answer["error"]["code"] == -32600


def test_batches_answer_each_call_and_keep_valid_reports(server):
    before = server.query("SELECT COALESCE(SUM(reports), 0) FROM inbox")[0][0] + \
        server.query("SELECT COALESCE(SUM(count), 0) FROM errors")[0][0]
    batch = [rpc("record_error", {"report": REPORT}, 1), rpc("ping", None, 2),
             rpc("record_error", {"report": {"exception_type": "x"}}, 3),
             rpc("nope", None, 4),
             {"jsonrpc": "2.0", "method": "record_error", "params": {"report": REPORT}}]
    status, _, answers = post_json(server, batch)
    assert status == 200
    by_id = {answer["id"]: answer for answer in answers}
    assert len(answers) == 4  # the notification gets no answer
    assert by_id[1]["result"] == {"accepted": True}
    assert by_id[2]["result"] is True
    assert by_id[3]["error"]["code"] == -32602
    assert by_id[4]["error"]["code"] == -32601

    def stored():
        return server.query("SELECT COALESCE(SUM(reports), 0) FROM inbox")[0][0] + \
            server.query("SELECT COALESCE(SUM(count), 0) FROM errors")[0][0]
    assert stored() == before + 2


def test_empty_batch_is_invalid(server):
    assert post_json(server, [])[2]["error"]["code"] == -32600


def test_get_is_refused_with_a_hint(server):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(server.rpc_url, timeout=10)
    assert raised.value.code == 405


def test_health_page_shows_no_secret(server):
    import urllib.request

    with urllib.request.urlopen(server.web_url + "/check_health", timeout=10) as response:
        text = response.read().decode()
    status = json.loads(text)
    assert status["status"] == "ok"
    assert KEY not in text and "other-key" not in text


def test_a_flood_is_answered_429_with_retry_after(tmp_path):
    limited = start_server(tmp_path, rate_limit_per_key=0, rate_limit_per_address=5,
                           rate_limit_burst_seconds=1)
    try:
        statuses = []
        for _ in range(12):
            status, headers, _ = limited.post(json.dumps(rpc("ping")).encode())
            statuses.append(status)
            if status == 429:
                assert int(headers["Retry-After"]) >= 1
        assert statuses[:5] == [200] * 5
        assert 429 in statuses[5:]
    finally:
        limited.stop()


def test_unknown_fields_and_oversize_values_are_not_stored(server):
    canary = "unknown-field-canary-7f3"
    report = dict(REPORT, extra_field=canary, exception_message="m" * 20000)
    report["traceback"] = [dict(REPORT["traceback"][0], frame_note=canary)]
    call = rpc("record_error", {"report": report, "extra": canary})
    call["envelope_extra"] = canary
    status, _, answer = post_json(server, call)
    assert (status, answer["result"]) == (200, {"accepted": True})
    with server.db() as connection:
        dumped = "\n".join(connection.iterdump())
    assert canary not in dumped and "m" * 16385 not in dumped


def test_the_optional_fields_are_stored_and_their_unknown_parts_are_not(server):
    canary = "user-email-canary@example.com"
    extras = {"level": "warning", "tags": {"component": "billing"},
              "request": {"method": "POST", "url": "https://shop.example.com/cart?id",
                          "route": "/cart", "headers": {"Accept": "*/*"}},
              "chained": [{"exception_type": "builtins.KeyError", "exception_message": "'id'",
                           "traceback": [dict(REPORT["traceback"][0], line_number=3)]}]}
    plain = dict(REPORT, user={"id": "42"}, **extras)
    plain["traceback"] = [dict(REPORT["traceback"][0], function_name="stored_as_it_came")]
    general = dict(plain, user={"id": "43", "email": canary},
                   request=dict(extras["request"], cookies={"sessionid": canary}))
    general["traceback"] = [dict(REPORT["traceback"][0], function_name="stored_trimmed")]
    for report in (plain, general):
        status, _, answer = post_json(server, rpc("record_error", {"report": report}))
        assert (status, answer["result"]) == (200, {"accepted": True})
    assert server.wait_until(lambda: len(server.query(
        "SELECT 1 FROM errors WHERE function_name LIKE 'stored_%'")) == 2)
    stored = dict(server.query("SELECT function_name, last_report FROM errors "
                               "WHERE function_name LIKE 'stored_%'"))
    for name, user_id in (("stored_as_it_came", "42"), ("stored_trimmed", "43")):
        report = json.loads(stored[name])
        assert {key: report[key] for key in extras} == extras
        assert report["user"] == {"id": user_id}
    with server.db() as connection:
        assert canary not in "\n".join(connection.iterdump())


def test_the_inbox_keeps_a_call_as_it_came_only_when_nothing_needs_dropping():
    from flawless.server.ingest.rpc import Call

    plain = Call(rpc("record_error", {"report": REPORT}))
    plain.examine()
    assert plain.has_report and plain.stored() is plain.raw
    canary = "unknown-field-canary-7f3"
    for raw in (rpc("record_error", {"report": dict(REPORT, extra_field=canary)}),
                rpc("record_error", {"report": REPORT, "extra": canary}),
                dict(rpc("record_error", {"report": REPORT}), envelope_extra=canary)):
        call = Call(raw)
        call.examine()
        assert call.has_report and canary not in json.dumps(call.stored())
    nul = Call(rpc("record_error", {"report": dict(REPORT, hostname="web\x00-3")}))
    nul.examine()
    assert nul.stored()["params"]["report"]["hostname"] == "web-3"
