"""JavaScript stacks as Chrome, Firefox and Safari print them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flawless.server.core.jsstack import (MAX_STACK_FRAMES, JsFrame, clean_url, parse_line,
                                          parse_stack, url_path)

CHROME = """TypeError: Cannot read properties of undefined (reading 'price')
    at lineTotal (http://127.0.0.1:8000/static/app.js:12:23)
    at Array.map (<anonymous>)
    at async Cart.checkout (http://127.0.0.1:8000/static/cart.js?v=3:40:9)
    at new Basket (http://127.0.0.1:8000/static/cart.js:7:5)
    at http://127.0.0.1:8000/static/app.js:30:1
    at eval (eval at run (http://127.0.0.1:8000/static/app.js:50:3), <anonymous>:1:1)
    at native"""

FIREFOX = """lineTotal@http://127.0.0.1:8000/static/app.js:12:23
checkout/<@http://127.0.0.1:8000/static/cart.js#top:40:9
@http://127.0.0.1:8000/static/app.js:30:1
run@http://127.0.0.1:8000/static/app.js line 50 > eval:1:1
"""

SAFARI = """lineTotal@http://127.0.0.1:8000/static/app.js:12:23
map@[native code]
global code@http://127.0.0.1:8000/static/app.js:30:1"""


def test_chrome_frames_with_and_without_function_names_async_new_and_eval():
    assert parse_stack(CHROME) == [
        JsFrame("lineTotal", "http://127.0.0.1:8000/static/app.js", 12, 23),
        JsFrame("Cart.checkout", "http://127.0.0.1:8000/static/cart.js", 40, 9),
        JsFrame("Basket", "http://127.0.0.1:8000/static/cart.js", 7, 5),
        JsFrame("", "http://127.0.0.1:8000/static/app.js", 30, 1),
        JsFrame("eval", "http://127.0.0.1:8000/static/app.js", 50, 3),
    ]


def test_firefox_frames_anonymous_nested_and_eval():
    assert parse_stack(FIREFOX) == [
        JsFrame("lineTotal", "http://127.0.0.1:8000/static/app.js", 12, 23),
        JsFrame("checkout/<", "http://127.0.0.1:8000/static/cart.js", 40, 9),
        JsFrame("", "http://127.0.0.1:8000/static/app.js", 30, 1),
        JsFrame("run", "http://127.0.0.1:8000/static/app.js", 50, None),
    ]


def test_safari_skips_native_code_and_names_global_code():
    assert parse_stack(SAFARI) == [
        JsFrame("lineTotal", "http://127.0.0.1:8000/static/app.js", 12, 23),
        JsFrame("global code", "http://127.0.0.1:8000/static/app.js", 30, 1),
    ]


def test_frames_only_lines_and_a_line_without_column():
    assert parse_stack("https://cdn.example/a.js:3:4\nhttps://cdn.example/b.js:9") == [
        JsFrame("", "https://cdn.example/a.js", 3, 4), JsFrame("", "https://cdn.example/b.js", 9, None)]


def test_a_v8_message_that_looks_like_a_frame_is_not_one():
    stack = "Error: no user ann@mail.example.com:12:3\n    at f (http://h/a.js:1:2)"
    assert parse_stack(stack) == [JsFrame("f", "http://h/a.js", 1, 2)]


@pytest.mark.parametrize("line", ["TypeError: x is undefined", "", "    at <anonymous>",
                                  "[native code]", "f@http://h/a.js:0:1", "at", "@",
                                  "f@http://h/a.js"])
def test_lines_that_are_no_frame(line):
    assert parse_line(line) is None


def test_a_huge_stack_is_bounded():
    stack = "\n".join(f"    at f{n} (http://h/a.js:{n + 1}:1)" for n in range(10_000))
    frames = parse_stack(stack)
    assert len(frames) == MAX_STACK_FRAMES and frames[0].function == "f0"


@given(st.text(max_size=300))
def test_any_text_gives_frames_with_positive_lines_and_no_query(text):
    for frame in parse_stack(text):
        assert frame.line >= 1 and (frame.column is None or frame.column >= 1)
        assert "?" not in frame.url and "#" not in frame.url


def test_urls_lose_query_and_fragment_and_paths_their_origin():
    assert clean_url("https://h/a.js?token=s3cret#x") == "https://h/a.js"
    assert url_path("https://h:8443/static/a.js?v=1") == "/static/a.js"
    assert url_path("webpack:///src/a.ts") == "/src/a.ts"
    assert url_path("/static/a.js") == "/static/a.js"
