"""The wire schema: validation names every bad field, bounds trim instead of rejecting."""

from __future__ import annotations

import hashlib

import pytest

from flawless.report import (MAX_FRAMES, MAX_LOCALS_PER_FRAME, MAX_STRING_CHARS, InvalidReport,
                             NotebookCell, line_hash, parse_report, report_to_dict)


def valid(**changes):
    report = {
        "exception_type": "builtins.ValueError",
        "exception_message": "invalid literal",
        "traceback": [{"filename": "/srv/app/shop/cart.py", "line_number": 42,
                       "function_name": "add_item", "text": "total += item.price",
                       "frame_locals": {"qty": "3"}}],
        "hostname": "web-3",
        "revision": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "error_count": 2,
        "error_threshold": 3,
        "additional_info": "GET /cart?id=7",
        "context": {"notebook": "analysis.ipynb", "execution_count": 12, "trusted": True},
        "timestamp": 1763700000.25,
    }
    report.update(changes)
    return report


def test_a_full_report_round_trips():
    data = valid()
    assert report_to_dict(parse_report(data)) == data


def test_unknown_fields_are_ignored():
    report = parse_report(valid(future_field={"x": 1}))
    assert "future_field" not in report_to_dict(report)


@pytest.mark.parametrize("changes, field, reason", [
    ({"exception_type": None}, "exception_type", "is required"),
    ({"exception_type": ""}, "exception_type", "must not be empty"),
    ({"exception_type": 7}, "exception_type", "must be a string"),
    ({"exception_message": None}, "exception_message", "is required"),
    ({"traceback": []}, "traceback", "must not be empty"),
    ({"traceback": "x"}, "traceback", "must be a list of frames"),
    ({"traceback": [{"filename": "a.py", "line_number": 0, "function_name": "f"}]},
     "traceback[0].line_number", "must be >= 1"),
    ({"traceback": [{"filename": "a.py", "line_number": True, "function_name": "f"}]},
     "traceback[0].line_number", "must be an integer"),
    ({"traceback": [{"line_number": 1, "function_name": "f"}]},
     "traceback[0].filename", "is required"),
    ({"traceback": [{"filename": "a.py", "line_number": 1, "function_name": "f",
                     "frame_locals": {"x": 1}}]},
     "traceback[0].frame_locals.x", "must be a string"),
    ({"error_count": 0}, "error_count", "must be >= 1"),
    ({"error_threshold": "3"}, "error_threshold", "must be an integer"),
    ({"context": {"cell": [1, 2]}}, "context.cell", "must be a string, a finite number or a boolean"),
    ({"timestamp": "yesterday"}, "timestamp", "must be a finite number of seconds since the epoch"),
    ({"hostname": ["web"]}, "hostname", "must be a string"),
])
def test_each_bad_field_is_named_with_its_rule(changes, field, reason):
    with pytest.raises(InvalidReport) as raised:
        parse_report(valid(**changes))
    assert raised.value.errors[field] == reason


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InvalidReport) as raised:
        parse_report({"exception_type": 1, "traceback": [{}]})
    assert {"exception_type", "exception_message", "traceback[0].filename",
            "traceback[0].line_number", "traceback[0].function_name"} <= set(raised.value.errors)


def test_a_report_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidReport) as raised:
        parse_report(["not", "an", "object"])
    assert raised.value.errors == {"report": "must be an object"}


def test_oversized_values_are_trimmed_not_rejected():
    frame = {"filename": "a.py", "line_number": 1, "function_name": "f",
             "text": "x" * 100000,
             "frame_locals": {f"v{i}": "y" * 5000 for i in range(500)}}
    report = parse_report(valid(traceback=[frame] * (MAX_FRAMES + 100), hostname="h" * 1000))
    assert len(report.traceback) == MAX_FRAMES
    assert len(report.traceback[0].text) == MAX_STRING_CHARS
    assert len(report.traceback[0].frame_locals) == MAX_LOCALS_PER_FRAME
    assert len(report.hostname) == 255


def test_trimming_keeps_the_innermost_frames():
    frames = [{"filename": "a.py", "line_number": n, "function_name": "f"}
              for n in range(1, MAX_FRAMES + 51)]
    report = parse_report(valid(traceback=frames))
    assert report.traceback[0].line_number == 1
    assert report.traceback[-1].line_number == MAX_FRAMES + 50


def test_nul_bytes_are_removed_from_strings():
    report = parse_report(valid(exception_message="a\x00b"))
    assert report.exception_message == "ab"


# -- check_report: the quick path of the server's acknowledgement must agree with parse_report

from hypothesis import given, settings, strategies as st  # noqa: E402

from flawless.report import _plain_report, stored_form  # noqa: E402

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=20), st.just("a\x00b"), st.just(" "),
                    st.sampled_from(["x" * 4096, "x" * 4097, "x" * 16385]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
FRAMES = st.fixed_dictionaries(
    {"filename": st.one_of(st.text(max_size=30), VALUES),
     "line_number": st.one_of(st.integers(-2, 10**10), VALUES),
     "function_name": st.one_of(st.text(max_size=10), VALUES)},
    optional={"text": st.one_of(st.text(max_size=10), VALUES),
              "frame_locals": st.one_of(st.dictionaries(st.text(max_size=200), VALUES,
                                                        max_size=4), VALUES),
              "cell": st.one_of(st.fixed_dictionaries(
                  {"line": st.one_of(st.integers(-1, 10**10), VALUES)},
                  optional={"notebook": st.one_of(st.text(max_size=10), VALUES),
                            "id": st.one_of(st.from_regex(r"[\w-]{0,65}", fullmatch=True),
                                            VALUES),
                            "execution_count": st.one_of(st.integers(-1, 10**10), VALUES),
                            "line_hash": st.one_of(st.sampled_from(["0f" * 8, "0F" * 8, "0f"]),
                                                   VALUES)}), VALUES)})
REPORTS = st.fixed_dictionaries(
    {"exception_type": st.one_of(st.text(max_size=20), VALUES),
     "exception_message": st.one_of(st.text(max_size=20), VALUES),
     "traceback": st.one_of(st.lists(FRAMES, max_size=3), VALUES)},
    optional={"hostname": st.one_of(st.text(max_size=300), VALUES),
              "revision": VALUES, "additional_info": VALUES,
              "error_count": st.one_of(st.integers(-1, 10**10), VALUES),
              "error_threshold": VALUES,
              "context": st.one_of(st.dictionaries(st.text(max_size=130), VALUES,
                                                   max_size=3), VALUES),
              "timestamp": VALUES})


@settings(max_examples=300, deadline=None)
@given(REPORTS)
def test_stored_form_refuses_exactly_what_parse_report_refuses(data):
    try:
        parse_report(data)
        refused = None
    except InvalidReport as error:
        refused = error.errors
    if refused is None:
        kept = stored_form(data)
        assert kept is None or kept == report_to_dict(parse_report(data))
    else:
        with pytest.raises(InvalidReport) as raised:
            stored_form(data)
        assert raised.value.errors == refused


@settings(max_examples=200, deadline=None)
@given(REPORTS)
def test_the_quick_path_only_passes_reports_parse_report_keeps_as_they_are(data):
    if _plain_report(data):
        report = parse_report(data)
        assert report.exception_message == data["exception_message"]
        assert [frame.filename for frame in report.traceback] == \
            [frame["filename"] for frame in data["traceback"]]
        assert [frame.frame_locals for frame in report.traceback] == \
            [frame.get("frame_locals") for frame in data["traceback"]]


def test_a_typical_report_takes_the_quick_path():
    assert _plain_report(valid())
    assert stored_form(valid()) is None


def test_a_report_needing_trimming_is_stored_trimmed():
    kept = stored_form(valid(exception_message="x" * 20000, hostname="h\ud800"))
    assert len(kept["exception_message"]) == 16384 and kept["hostname"] == "h\ufffd"


# -- frames in notebook cells

NOTEBOOK_FRAME = {"filename": "<ipykernel>/3051.py", "line_number": 2, "function_name": "<module>",
                  "text": "", "cell": {"notebook": "~/q3/analysis.ipynb", "id": "9f2c-a_1",
                                       "execution_count": 7, "line": 4,
                                       "line_hash": line_hash("ratio  =  total / count ")}}


def test_a_frame_in_a_notebook_cell_round_trips():
    data = valid(traceback=[NOTEBOOK_FRAME])
    report = parse_report(data)
    assert report.traceback[0].cell == NotebookCell(4, "~/q3/analysis.ipynb", "9f2c-a_1", 7,
                                                    line_hash("ratio = total / count"))
    assert report_to_dict(report) == data
    assert stored_form(data) == data  # not the quick path, but kept as it came


def test_a_cell_needs_only_its_line():
    frame = {**NOTEBOOK_FRAME, "cell": {"line": 1, "future": "ignored"}}
    assert report_to_dict(parse_report(valid(traceback=[frame])))["traceback"][0]["cell"] == \
        {"line": 1}


def test_the_line_hash_is_sha256_of_the_folded_line():
    assert line_hash(" ratio =\ttotal  / count\n") == \
        hashlib.sha256(b"ratio = total / count").hexdigest()[:16]
    assert line_hash("") == hashlib.sha256(b"").hexdigest()[:16]


@pytest.mark.parametrize("cell, field, reason", [
    ("7", "cell", "must be an object"),
    ({}, "cell.line", "is required"),
    ({"line": 0}, "cell.line", "must be >= 1"),
    ({"line": 1, "execution_count": 0}, "cell.execution_count", "must be >= 1"),
    ({"line": 1, "notebook": " "}, "cell.notebook", "must not be empty"),
    ({"line": 1, "id": "vscode-notebook-cell:/home/alice/a.ipynb#W1"}, "cell.id",
     "must be 1 to 64 letters, digits, '-' or '_'"),
    ({"line": 1, "id": "x" * 65}, "cell.id", "must be 1 to 64 letters, digits, '-' or '_'"),
    ({"line": 1, "id": ""}, "cell.id", "must be 1 to 64 letters, digits, '-' or '_'"),
    ({"line": 1, "line_hash": "ratio = 1 / 0"}, "cell.line_hash",
     "must be 8 to 64 lowercase hex digits"),
    ({"line": 1, "line_hash": "ABCDEF0123456789"}, "cell.line_hash",
     "must be 8 to 64 lowercase hex digits"),
])
def test_each_bad_cell_field_is_named_with_its_rule(cell, field, reason):
    with pytest.raises(InvalidReport) as raised:
        parse_report(valid(traceback=[{**NOTEBOOK_FRAME, "cell": cell}]))
    assert raised.value.errors == {f"traceback[0].{field}": reason}


def test_a_long_notebook_path_is_trimmed():
    frame = {**NOTEBOOK_FRAME, "cell": {"line": 1, "notebook": "n/" * 5000}}
    cell = parse_report(valid(traceback=[frame])).traceback[0].cell
    assert len(cell.notebook) == MAX_STRING_CHARS


# -- columns and in-app flags (JavaScript frames, Sentry SDKs)

def test_a_frame_keeps_its_column_and_in_app_flag_through_the_wire():
    frame = {"filename": "https://shop.example/static/app.js", "line_number": 3,
             "function_name": "checkout", "column_number": 17, "in_app": False}
    report = parse_report(valid(traceback=[frame]))
    assert (report.traceback[0].column_number, report.traceback[0].in_app) == (17, False)
    assert report_to_dict(report)["traceback"][0] == {**frame, "text": ""}


@pytest.mark.parametrize("field, value, reason", [
    ("column_number", 0, "must be >= 1"), ("column_number", "7", "must be an integer"),
    ("in_app", "yes", "must be true or false")])
def test_a_bad_column_or_in_app_flag_names_the_field(field, value, reason):
    frame = {"filename": "a.js", "line_number": 1, "function_name": "f", field: value}
    with pytest.raises(InvalidReport) as raised:
        parse_report(valid(traceback=[frame]))
    assert raised.value.errors == {f"traceback[0].{field}": reason}
