"""Sentry events (as sentry-python and @sentry/browser send them) mapped to wire reports."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flawless.report import parse_report
from flawless.server.core.sentry_event import report_from_event, revision_of, wire_frame

SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


def python_frame(path: str, line: int, function: str, text: str, **extra) -> dict:
    return {"filename": path.rsplit("/", 1)[-1], "abs_path": path, "function": function,
            "module": "shop.cart", "lineno": line, "context_line": text,
            "pre_context": ["x"], "post_context": ["y"], "in_app": True, **extra}


def python_event() -> dict:
    """``raise ValueError("bad") from ZeroDivisionError`` as sentry-python sends it."""
    return {
        "event_id": "aa1a4f9a68c04be7bc867c2ca6b8c6ba", "platform": "python", "level": "error",
        "timestamp": "2026-11-30T16:01:41.535727Z", "server_name": "web-3", "release": SHA,
        "environment": "production", "tags": {"component": "billing"},
        "user": {"id": 42, "email": "ann@example.com", "ip_address": "192.0.2.1"},
        "contexts": {"runtime": {"name": "CPython", "version": "3.11.7"},
                     "trace": {"trace_id": "d713a354"}},
        "request": {"method": "POST", "url": "https://shop.example/cart?id=7",
                    "query_string": "id=7", "data": {"card": "4111"},
                    "cookies": {"session": "s3cret"},
                    "headers": {"User-Agent": "curl/8", "Cookie": "session=s3cret",
                                "Authorization": "Bearer abc", "X-Forwarded-For": "192.0.2.1",
                                "Referer": "https://shop.example/?q=mine"}},
        "exception": {"values": [
            {"type": "ZeroDivisionError", "value": "division by zero", "module": None,
             "stacktrace": {"frames": [python_frame("/srv/app/shop/cart.py", 14, "average",
                                                    "        1/0")]}},
            {"type": "ValueError", "value": "bad", "module": None,
             "stacktrace": {"frames": [
                 python_frame("/srv/app/lib/python3.11/site-packages/requests/api.py", 3,
                              "get", "x", in_app=False),
                 python_frame("/srv/app/shop/cart.py", 16, "average",
                              "        raise ValueError('bad') from e",
                              vars={"qty": "3", "items": [1, 2], "password": "[Filtered]"}),
                 {"function": "native", "in_app": False}]}},
        ]},
    }


def test_a_python_event_becomes_a_report_with_its_chain_frames_and_locals():
    report = report_from_event(python_event())
    assert report["exception_type"] == "builtins.ValueError"
    assert report["exception_message"] == "bad"
    assert [frame["filename"] for frame in report["traceback"]] == [
        "/srv/app/lib/python3.11/site-packages/requests/api.py", "/srv/app/shop/cart.py"]
    inner = report["traceback"][-1]
    assert inner["line_number"] == 16 and inner["function_name"] == "average"
    assert inner["text"] == "        raise ValueError('bad') from e" and inner["in_app"] is True
    assert inner["frame_locals"] == {"qty": "3", "items": "[1, 2]", "password": "[Filtered]"}
    assert report["traceback"][0]["in_app"] is False
    assert report["chained"] == [{
        "exception_type": "builtins.ZeroDivisionError", "exception_message": "division by zero",
        "traceback": [{"filename": "/srv/app/shop/cart.py", "line_number": 14,
                       "function_name": "average", "text": "        1/0", "in_app": True}]}]
    assert report["hostname"] == "web-3" and report["revision"] == SHA
    assert report["level"] == "error" and report["user"] == {"id": "42"}
    assert report["tags"] == {"component": "billing", "environment": "production"}
    assert report["context"] == {"platform": "python", "runtime.name": "CPython",
                                 "runtime.version": "3.11.7"}
    assert report["timestamp"] == 1796054501.535727
    parse_report(report)  # valid as it is


def test_the_request_keeps_method_url_path_and_harmless_headers_only():
    request = report_from_event(python_event())["request"]
    assert request == {"method": "POST", "url": "https://shop.example/cart",
                       "headers": {"User-Agent": "curl/8", "Referer": "https://shop.example/"}}


def test_nothing_personal_of_the_user_is_kept():
    report = report_from_event(python_event())
    assert "ann@example.com" not in repr(report) and "192.0.2.1" not in repr(report)
    assert "s3cret" not in repr(report)


def test_a_browser_event_keeps_urls_without_query_and_columns():
    event = {"platform": "javascript", "release": "shop@" + SHA[:12], "exception": {"values": [
        {"type": "TypeError", "value": "x is undefined", "stacktrace": {"frames": [
            {"filename": "https://shop.example/static/bundle.js?v=2", "function": "?",
             "lineno": 1, "colno": 2345, "in_app": True}]}}]}}
    report = report_from_event(event)
    assert report["exception_type"] == "TypeError" and report["revision"] == SHA[:12]
    assert report["traceback"] == [{"filename": "https://shop.example/static/bundle.js",
                                    "line_number": 1, "column_number": 2345,
                                    "function_name": "?", "text": "", "in_app": True}]


def test_a_message_event_uses_the_thread_stack_or_a_frame_that_maps_nowhere():
    with_stack = report_from_event({"logentry": {"message": "cache miss %s",
                                                 "formatted": "cache miss storm"},
                                    "level": "warning", "threads": {"values": [
                                        {"current": True, "stacktrace": {"frames": [
                                            python_frame("/srv/app/shop/cart.py", 3, "f", "g()")
                                        ]}}]}})
    assert with_stack["exception_type"] == "message" and with_stack["level"] == "warning"
    assert with_stack["exception_message"] == "cache miss storm"
    assert with_stack["traceback"][0]["line_number"] == 3
    bare = report_from_event({"message": "hello", "platform": "go"})
    assert bare["traceback"] == [{"filename": "<go>", "line_number": 1,
                                  "function_name": "<unknown>"}]
    parse_report(bare)


def test_releases_name_a_commit_only_when_they_are_one():
    assert revision_of(SHA.upper()) == SHA
    assert revision_of("shop@1.2.3") is None and revision_of("1.2.3") is None
    assert revision_of("backend@9fceb02") == "9fceb02"
    report = report_from_event({"release": "shop@1.2.3", "message": "m"})
    assert "revision" not in report and report["tags"]["release"] == "shop@1.2.3"


def test_frames_without_a_line_are_left_out_and_many_frames_are_bounded():
    assert wire_frame({"function": "f"}) is None
    frames = [python_frame(f"/a/m{n}.py", n + 1, "f", "") for n in range(5000)]
    report = report_from_event({"exception": {"values": [{"type": "E", "stacktrace": {
        "frames": frames}}]}})
    kept = [frame["filename"] for frame in report["traceback"]]
    assert len(kept) == 256 and kept[0] == "/a/m0.py" and kept[-1] == "/a/m4999.py"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=30)
KEYS = st.sampled_from(["exception", "message", "logentry", "threads", "release", "tags",
                        "contexts", "request", "user", "server_name", "level", "timestamp",
                        "platform", "stacktrace"])


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(KEYS, JSON | st.fixed_dictionaries(
    {"values": st.lists(st.dictionaries(st.sampled_from(
        ["type", "value", "module", "stacktrace"]), JSON | st.fixed_dictionaries(
            {"frames": st.lists(st.dictionaries(st.sampled_from(
                ["abs_path", "filename", "lineno", "colno", "function", "vars", "in_app",
                 "context_line"]), JSON), max_size=3)})), max_size=3)})))
def test_any_event_shaped_json_maps_to_a_report_the_wire_accepts(event):
    parse_report(report_from_event(event))


def test_what_is_no_object_is_no_report():
    assert report_from_event([1, 2]) is None and report_from_event("x") is None
