"""Where a minified frame comes from, once a map has said (pure)."""

from __future__ import annotations

import pytest

from flawless.report import Frame
from flawless.server.core.sourcemap import (Token, resolution_note, resolved_frame,
                                            script_keys, source_path)


@pytest.mark.parametrize("source, path", [
    ("webpack://shop/./src/checkout.ts", "src/checkout.ts"),
    ("webpack:///./src/checkout.ts?3f2a", "src/checkout.ts"),
    ("webpack:///src/checkout.ts", "src/checkout.ts"),
    ("../src/checkout.ts", "src/checkout.ts"),
    ("../../app/../src/checkout.ts", "app/src/checkout.ts"),
    ("file:///home/ci/build/src/checkout.ts", "home/ci/build/src/checkout.ts"),
    ("app:///src/checkout.ts", "src/checkout.ts"),
    ("src\\checkout.ts", "src/checkout.ts"),
    ("rollup://localhost/src/x.js", "src/x.js"),
])
def test_bundler_prefixes_and_relative_components_are_dropped(source, path):
    assert source_path(source) == path


def test_a_script_is_looked_up_by_its_url_then_its_path():
    assert script_keys("http://h:8000/static/app.js?v=2") == ["http://h:8000/static/app.js",
                                                             "/static/app.js"]
    assert script_keys("/static/app.js") == ["/static/app.js"]


def test_the_resolved_frame_takes_the_maps_place_function_and_line_text():
    frame = Frame("http://h/static/app.js", 1, "c", "", column_number=31)
    token = Token("../src/checkout.ts", 4, 10, "lineTotal", "  return item.price * q;\n")
    resolved = resolved_frame(frame, token)
    assert (resolved.filename, resolved.line_number, resolved.column_number,
            resolved.function_name, resolved.text) == (
        "src/checkout.ts", 4, 10, "lineTotal", "  return item.price * q;")
    assert resolution_note(frame, resolved) == (
        "resolved http://h/static/app.js:1:31 through its source map to src/checkout.ts:4")


def test_without_a_function_name_in_the_map_the_minified_one_stays():
    frame = Frame("http://h/static/app.js", 1, "c", "", column_number=31)
    for unknown in (None, "<unknown>", ""):
        assert resolved_frame(frame, Token("a.ts", 4, 1, unknown, None)).function_name == "c"
    assert resolved_frame(frame, Token("a.ts", 4, 1, None, None)).text == ""
