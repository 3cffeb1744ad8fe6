"""What flawless.js sends, turned into wire reports."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flawless.report import parse_report
from flawless.server.core.browser import browser_report

STACK = """TypeError: Cannot read properties of undefined (reading 'price')
    at lineTotal (http://127.0.0.1:8000/static/cart.js:12:23)
    at http://127.0.0.1:8000/static/app.js:30:1"""


def test_an_error_with_a_stack_becomes_frames_outermost_first():
    report = browser_report({"type": "TypeError", "message": "Cannot read", "stack": STACK,
                             "page": "http://127.0.0.1:8000/shop?user=ann#x",
                             "release": "9fceb02", "kind": "error"})
    assert report == {
        "exception_type": "TypeError", "exception_message": "Cannot read", "revision": "9fceb02",
        "context": {"kind": "error", "page": "http://127.0.0.1:8000/shop"},
        "traceback": [
            {"filename": "http://127.0.0.1:8000/static/app.js", "line_number": 30,
             "column_number": 1, "function_name": "<anonymous>"},
            {"filename": "http://127.0.0.1:8000/static/cart.js", "line_number": 12,
             "column_number": 23, "function_name": "lineTotal"}]}
    parse_report(report)


def test_without_a_stack_the_file_line_and_column_make_the_frame():
    report = browser_report({"message": "Script error", "file": "http://h/a.js?v=1",
                             "line": 4, "column": 2})
    assert report["traceback"] == [{"filename": "http://h/a.js", "line_number": 4,
                                    "column_number": 2, "function_name": "<anonymous>"}]
    assert report["exception_type"] == "Error"


def test_a_rejection_without_anything_maps_to_the_page():
    report = browser_report({"kind": "rejection", "message": '{"code":7}',
                             "page": "http://h/shop?x=1"})
    assert report["exception_type"] == "UnhandledRejection"
    assert report["traceback"] == [{"filename": "http://h/shop", "line_number": 1,
                                    "function_name": "<anonymous>"}]
    assert browser_report({})["traceback"][0]["filename"] == "<unknown>"


@given(st.dictionaries(st.sampled_from(["type", "message", "stack", "file", "line", "column",
                                        "page", "release", "kind"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=200)))
def test_anything_a_page_sends_maps_to_a_valid_report(payload):
    parse_report(browser_report(payload))


def test_what_is_no_object_is_no_report():
    assert browser_report([]) is None


def test_a_page_or_file_that_is_only_a_fragment_or_query_is_no_filename():
    for url in ("#", "?a=1", " #x"):
        report = browser_report({"page": url, "file": url, "line": 3})
        assert report["traceback"][0]["filename"] == "<unknown>"
        assert "page" not in report["context"]
        parse_report(report)


def test_stack_frames_whose_url_is_only_a_fragment_or_query_are_left_out():
    report = browser_report({"stack": "    at f (#:1:2)\n    at g (?a:1:2)\n"
                                      "    at h (http://h/a.js:5:6)"})
    assert [frame["filename"] for frame in report["traceback"]] == ["http://h/a.js"]
