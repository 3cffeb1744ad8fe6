"""Hostile input: fuzzed reports and random bodies never get a 5xx, never crash the server,
and valid reports keep being accepted in the same run (one server for the whole module)."""

from __future__ import annotations

import json
import socket
import urllib.error

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.server import FlawlessProcess, start_server

from .common import get_page, record_body, report, rpc_body

MAX_BODY_BYTES = 262144
FUZZ = settings(print_blob=False, max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = start_server(tmp_path_factory.mktemp("hostile"), max_body_bytes=MAX_BODY_BYTES,
                           rate_limit_per_key=0, rate_limit_per_address=0)
    yield process
    process.stop()


def still_serving(server: FlawlessProcess) -> None:
    """The process is alive and accepts a valid report."""
    assert server.process is not None and server.process.poll() is None, server.log()[-3000:]
    status, _, body = server.post(rpc_body("record_error", {"report": report()}))
    assert (status, json.loads(body).get("result")) == (200, {"accepted": True}), body


def assert_not_5xx(server: FlawlessProcess, body: bytes, **options) -> tuple[int, bytes]:
    """POST ``body``; fail on a 5xx. A body over the limit may be cut off by the server's
    early 413 while it is still being sent: that counts as the 413 it is."""
    try:
        status, _, answer = server.post(body, **options)
    except urllib.error.URLError as error:
        assert len(body) > MAX_BODY_BYTES and isinstance(
            error.reason, (BrokenPipeError, ConnectionResetError)), error
        return 413, b""
    assert status < 500, (status, answer[:500], body[:300])
    return status, answer


# -- strategies ------------------------------------------------------------------------------

HUGE = st.sampled_from([5000, 40000]).map(lambda n: "\u00e9x<\x00" * (n // 4))
EXTREME_INTS = st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64 + 7, -2**63, 10**30])
EXTREME_FLOATS = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -0.0,
                                  5e-324, 1e11, 99999999999.9])
HOSTILE_TEXT = st.text(st.characters(codec=None, categories=None), max_size=60) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "\udfff lone", "\r\nBcc: x@evil.example", "../../etc/passwd",
     "--output=/tmp/flawless-pwned", "<script>alert(1)</script>", "\u202e\u200b", ""])
JSON_LEAF = (st.none() | st.booleans() | EXTREME_INTS | st.integers() | EXTREME_FLOATS
             | st.floats() | HOSTILE_TEXT | HUGE)
JSON_ANY = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(HOSTILE_TEXT, inner, max_size=4), max_leaves=12)


def hostile(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Either a valid value or anything at all."""
    return st.one_of(valid, valid, JSON_ANY)


FRAME = st.fixed_dictionaries(
    {"filename": hostile(st.sampled_from(["/srv/app/shop/cart.py", "shop/pricing.py"])),
     "line_number": hostile(st.integers(1, 20)),
     "function_name": hostile(st.sampled_from(["total", "add_item"])),
     "text": hostile(HOSTILE_TEXT)},
    optional={"frame_locals": hostile(st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=5)),
              "unknown_field": JSON_ANY})

REPORT = st.fixed_dictionaries(
    {"exception_type": hostile(st.sampled_from(["builtins.ValueError", "x.Y"])),
     "exception_message": hostile(HOSTILE_TEXT),
     "traceback": hostile(st.lists(FRAME, min_size=1, max_size=4))},
    optional={"hostname": hostile(HOSTILE_TEXT), "revision": hostile(HOSTILE_TEXT),
              "error_count": hostile(st.integers(1, 5)),
              "error_threshold": hostile(st.integers(1, 5)),
              "additional_info": hostile(HOSTILE_TEXT),
              "context": hostile(st.dictionaries(HOSTILE_TEXT, JSON_LEAF, max_size=5)),
              "timestamp": hostile(st.floats(0, 2e9)),
              "future_field": JSON_ANY})

ENVELOPE = st.one_of(
    REPORT.map(lambda item: {"jsonrpc": "2.0", "method": "record_error", "id": 1,
                             "params": {"report": item}}),
    st.fixed_dictionaries({"jsonrpc": hostile(st.just("2.0")),
                           "method": hostile(st.sampled_from(["record_error", "ping"])),
                           "id": JSON_ANY, "params": hostile(REPORT.map(lambda r: [r]))}),
    JSON_ANY)


def dump(value) -> bytes:
    """JSON text of ``value`` the way a careless client would write it: lone surrogates
    escaped, NaN and Infinity as bare words."""
    return json.dumps(value).encode()


# -- tests -----------------------------------------------------------------------------------


@FUZZ
@given(calls=st.one_of(ENVELOPE, st.lists(ENVELOPE, min_size=1, max_size=5)))
def test_fuzzed_json_rpc_never_gets_a_5xx(server, calls):
    status, answer = assert_not_5xx(server, dump(calls))
    if status == 200 and answer:
        answers = json.loads(answer)
        for item in answers if isinstance(answers, list) else [answers]:
            assert ("result" in item) != ("error" in item)


@FUZZ
@given(body=st.one_of(
    st.binary(max_size=2000),
    st.binary(max_size=200).map(lambda raw: b'{"jsonrpc": "2.0", "method": "' + raw + b'"}'),
    st.sampled_from([b"\xff\xfe\x00{", b'{"a": "\xc3\x28"}', b"\xed\xa0\x80", b"",
                     b"null", b"[]", b"[[]]", b"1e999999", b"9" * 5000, b'"\\ud800"',
                     b"[" * 200000, b'{"a":' * 100000, b"{" * 262144,
                     rpc_body("ping").replace(b"ping", b"pi\x00ng")])),
    gzipped=st.booleans())
def test_random_bodies_never_get_a_5xx(server, body, gzipped):
    assert_not_5xx(server, body, gzip_body=gzipped)


@FUZZ
@given(reports=st.lists(REPORT, min_size=1, max_size=3))
def test_fuzzed_reports_leave_the_server_serving(server, reports):
    body = record_body(reports)
    status, answer = assert_not_5xx(server, body)
    assert status == 200 or (status == 413 and len(body) > MAX_BODY_BYTES), answer[:500]
    still_serving(server)


def test_invalid_utf8_and_nul_bytes_inside_strings(server):
    valid = record_body([report(exception_message="MARK")])
    for replacement in (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\\u0000", b"\x00",
                        b"\\ud800", b"\\udc00\\ud800"):
        status, answer = assert_not_5xx(server, valid.replace(b"MARK", replacement))
        assert status == 200
        answers = json.loads(answer)
        # A body that is not UTF-8 is a parse error (-32700); anything else is a valid call.
        assert answers["error"]["code"] == -32700 if isinstance(answers, dict) else \
            answers[0]["result"] == {"accepted": True}, (replacement, answers)
    still_serving(server)


def test_garbage_that_is_not_http_does_not_hurt(server):
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 300,
                    b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
                    b"POST /rpc HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /rpc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    b"\r\n" * 5000):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            try:
                connection.sendall(garbage)
                connection.shutdown(socket.SHUT_WR)
                answer = connection.recv(100)
            except OSError:  # the server may hang up on garbage before it is all sent
                answer = b""
        assert not answer.startswith(b"HTTP/1.1 5"), (garbage[:40], answer)
    still_serving(server)


def test_after_the_fuzzing_the_server_is_healthy_and_every_report_is_processed(server):
    still_serving(server)
    assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=60)
    status, text = get_page(server.web_url + "/check_health")
    assert status == 200 and json.loads(text)["status"] == "ok"
    assert "Traceback (most recent call last)" not in server.log(), server.log()[-5000:]
