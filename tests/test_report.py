"""The wire schema: validation names every bad field, bounds trim instead of rejecting."""

from __future__ import annotations

import hashlib

import pytest

from flawless.report import (MAX_CHAINED, MAX_CHAINED_FRAMES, MAX_FRAMES, MAX_HEADER_CHARS,
                             MAX_HEADERS, MAX_LOCALS_PER_FRAME, MAX_STRING_CHARS, MAX_TAG_CHARS,
                             MAX_TAGS, InvalidReport, NotebookCell, line_hash, parse_report,
                             report_to_dict)


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
        "level": "warning",
        "tags": {"component": "billing"},
        "request": {"method": "POST", "url": "https://shop.example.com/cart/7?coupon",
                    "route": "/cart/<int:cart_id>",
                    "headers": {"User-Agent": "curl/8.5", "Accept": "*/*"}},
        "user": {"id": "42"},
        "chained": [CHAINED_KEY_ERROR],
    }
    report.update(changes)
    return report


CHAINED_KEY_ERROR = {
    "exception_type": "builtins.KeyError", "exception_message": "'price'",
    "traceback": [{"filename": "/srv/app/shop/catalog.py", "line_number": 9,
                   "function_name": "price_of", "text": "return PRICES[name]"}]}


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
    ({"level": "fatal"}, "level", "must be one of error, warning, info"),
    ({"level": ["error"]}, "level", "must be one of error, warning, info"),
    ({"tags": ["a"]}, "tags", "must be an object of name -> string"),
    ({"tags": {"release": 3}}, "tags.release", "must be a string"),
    ({"request": "GET /"}, "request", "must be an object"),
    ({"request": {"method": 1}}, "request.method", "must be a string"),
    ({"request": {"headers": {"Accept": ["*/*"]}}}, "request.headers.Accept",
     "must be a string"),
    ({"user": "42"}, "user", 'must be an object {"id": ID}'),
    ({"user": {"id": 42}}, "user.id", "must be a string"),
    ({"chained": {}}, "chained", "must be a list of exceptions"),
    ({"chained": ["x"]}, "chained[0]", "must be an object"),
    ({"chained": [{"exception_message": "", "traceback": []}]},
     "chained[0].exception_type", "is required"),
    ({"chained": [{"exception_type": "builtins.KeyError", "traceback": []}]},
     "chained[0].exception_message", "is required"),
    ({"chained": [{"exception_type": "builtins.KeyError", "exception_message": ""}]},
     "chained[0].traceback", "is required"),
    ({"chained": [{"exception_type": "builtins.KeyError", "exception_message": "",
                   "traceback": [{"filename": "a.py", "line_number": 0, "function_name": "f"}]}]},
     "chained[0].traceback[0].line_number", "must be >= 1"),
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


def test_the_optional_fields_default_to_an_error_without_context():
    report = parse_report(valid(level=None, tags=None, request=None, user=None, chained=None))
    assert (report.level, report.tags, report.request, report.user_id, report.chained) == \
        ("error", None, None, None, ())
    data = report_to_dict(report)
    assert not {"level", "tags", "request", "user", "chained"} & set(data)


def test_the_new_fields_are_bounded_and_trimmed_not_rejected():
    many = {f"t{index}": "v" * (MAX_TAG_CHARS + 5) for index in range(MAX_TAGS + 5)}
    headers = {f"X-H{index}": "h" * (MAX_HEADER_CHARS + 5) for index in range(MAX_HEADERS + 5)}
    frames = [{"filename": "/srv/app/a.py", "line_number": index + 1, "function_name": "f"}
              for index in range(MAX_CHAINED_FRAMES + 10)]
    chained = [dict(CHAINED_KEY_ERROR, exception_message=str(index), traceback=frames)
               for index in range(MAX_CHAINED + 3)]
    report = parse_report(valid(
        tags=many, chained=chained, user={"id": "u" * 300, "email": "ann@example.com"},
        request={"method": "M" * 40, "url": "/" + "u" * 5000, "headers": headers,
                 "cookies": {"sessionid": "x"}}))
    assert len(report.tags) == MAX_TAGS
    assert all(len(value) == MAX_TAG_CHARS for value in report.tags.values())
    assert len(report.request.headers) == MAX_HEADERS
    assert len(report.request.method) == 32 and len(report.request.url) == MAX_STRING_CHARS
    assert len(report.user_id) == 255
    assert [item.exception_message for item in report.chained] == \
        [str(index) for index in range(MAX_CHAINED)]
    # The innermost frames of each chained exception are kept: that is where it was raised.
    assert [frame.line_number for frame in report.chained[0].traceback] == \
        list(range(11, MAX_CHAINED_FRAMES + 11))
    data = report_to_dict(report)
    assert data["user"] == {"id": "u" * 254 + "…"}  # nothing but the id is kept
    assert set(data["request"]) == {"method", "url", "headers"}


def test_a_chained_exception_never_raised_has_no_frames():
    report = parse_report(valid(chained=[dict(CHAINED_KEY_ERROR, traceback=[])]))
    assert report.chained[0].traceback == ()
    assert report_to_dict(report)["chained"][0]["traceback"] == []


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
REQUESTS = st.fixed_dictionaries(
    {}, optional={"method": st.one_of(st.sampled_from(["GET", "M" * 33]), VALUES),
                  "url": VALUES, "route": VALUES, "query": VALUES,
                  "headers": st.one_of(st.dictionaries(st.text(max_size=130), VALUES,
                                                       max_size=3), VALUES)})
CHAINED = st.fixed_dictionaries(
    {"exception_type": st.one_of(st.text(max_size=20), VALUES),
     "exception_message": st.one_of(st.text(max_size=20), VALUES),
     "traceback": st.one_of(st.lists(FRAMES, max_size=2), VALUES)},
    optional={"frame_locals": VALUES})
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
              "timestamp": VALUES,
              "level": st.one_of(st.sampled_from(["error", "warning", "info", "fatal"]), VALUES),
              "tags": st.one_of(st.dictionaries(st.text(max_size=130), VALUES, max_size=3),
                                VALUES),
              "request": st.one_of(REQUESTS, VALUES),
              "user": st.one_of(st.fixed_dictionaries({}, optional={"id": VALUES,
                                                                    "email": VALUES}), VALUES),
              "chained": st.one_of(st.lists(CHAINED, max_size=3), VALUES)})

# Mostly valid reports, each optional field sometimes odd: the quick path's cases.
CLEAN_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=12)
CLEAN_FRAMES = st.fixed_dictionaries(
    {"filename": st.sampled_from(["/srv/app/a.py", "b.py"]), "line_number": st.integers(1, 20),
     "function_name": CLEAN_TEXT},
    optional={"text": CLEAN_TEXT,
              "frame_locals": st.dictionaries(CLEAN_TEXT, CLEAN_TEXT, max_size=2)})
CLEAN_REPORTS = st.fixed_dictionaries(
    {"exception_type": st.sampled_from(["builtins.KeyError", "E"]),
     "exception_message": CLEAN_TEXT, "traceback": st.lists(CLEAN_FRAMES, min_size=1, max_size=2)},
    optional={
        "level": st.sampled_from(["error", "warning", "info"]),
        "tags": st.dictionaries(CLEAN_TEXT, CLEAN_TEXT, max_size=3),
        "request": st.fixed_dictionaries({}, optional={
            "method": st.just("GET"), "url": CLEAN_TEXT, "route": CLEAN_TEXT,
            "headers": st.dictionaries(CLEAN_TEXT, CLEAN_TEXT, max_size=2)}),
        "user": st.fixed_dictionaries({"id": CLEAN_TEXT}),
        "chained": st.lists(st.fixed_dictionaries(
            {"exception_type": st.sampled_from(["builtins.OSError", "E"]),
             "exception_message": CLEAN_TEXT,
             "traceback": st.lists(CLEAN_FRAMES, max_size=2)}), max_size=2),
        "context": st.dictionaries(CLEAN_TEXT, CLEAN_TEXT | st.floats(), max_size=2)})
# Where a value can be odd in a report that is otherwise clean, and odd values to put there.
ODD_PLACES = [("level",), ("tags", "t"), ("request",), ("request", "method"), ("request", "url"),
              ("request", "headers"), ("request", "headers", "h"), ("request", "cookies"),
              ("user",), ("user", "id"), ("user", "email"), ("chained",),
              ("chained", 0, "exception_type"), ("chained", 0, "traceback"),
              ("chained", 0, "traceback", 0, "filename"), ("chained", 0, "cause")]
ODD_VALUES = st.one_of(VALUES, st.sampled_from(["fatal", " ", "\ud800", "a\x00b", "M" * 33,
                                                 "x" * 257, "x" * 1025, "x" * 4097, [], {}]))


def _put(data, place, value):
    """Set ``value`` at ``place`` (a path of keys and indexes), creating what is missing."""
    *parents, last = place
    for step, following in zip(parents, [*parents[1:], last]):
        empty = [] if isinstance(following, int) else {}
        if isinstance(data, list):
            if not data:
                data.append(empty)
            data = data[0]
        elif not isinstance(data.get(step), (dict, list)):
            data[step] = empty
            data = data[step]
        else:
            data = data[step]
    if isinstance(data, list):
        data[:1] = [value]
    else:
        data[last] = value


@st.composite
def nearly_clean_reports(draw):
    """A clean report, half the time with one odd value somewhere in its new fields."""
    data = draw(CLEAN_REPORTS)
    if draw(st.booleans()):
        _put(data, draw(st.sampled_from(ODD_PLACES)), draw(ODD_VALUES))
    return data


NEARLY_VALID = nearly_clean_reports()


@settings(max_examples=300, deadline=None)
@given(REPORTS | NEARLY_VALID)
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


@settings(max_examples=500, deadline=None)
@given(REPORTS | NEARLY_VALID)
def test_the_quick_path_only_passes_reports_parse_report_keeps_as_they_are(data):
    if _plain_report(data):
        report = parse_report(data)
        assert report.exception_message == data["exception_message"]
        assert [frame.filename for frame in report.traceback] == \
            [frame["filename"] for frame in data["traceback"]]
        assert [frame.frame_locals for frame in report.traceback] == \
            [frame.get("frame_locals") for frame in data["traceback"]]
        assert report.level == (data.get("level") or "error")
        assert report.tags == data.get("tags")
        assert report.user_id == (data.get("user") or {}).get("id")
        request = report_to_dict(report).get("request")
        assert request == ({name: value for name, value in data["request"].items()
                            if value is not None} if data.get("request") is not None else None)
        assert [(item.exception_type, item.exception_message,
                 [(frame.filename, frame.line_number) for frame in item.traceback])
                for item in report.chained] == \
            [(item["exception_type"], item["exception_message"],
              [(frame["filename"], frame["line_number"]) for frame in item["traceback"]])
             for item in data.get("chained") or ()]


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


def test_names_that_need_cleaning_take_the_general_path():
    frame = {"filename": "/srv/app/a.py", "line_number": 1, "function_name": "f",
             "frame_locals": {"\ud800": "x"}}
    kept = stored_form(valid(traceback=[frame], context={"a\ud800": 1}))
    assert kept["traceback"][0]["frame_locals"] == {"\ufffd": "x"}
    assert kept["context"] == {"a\ufffd": 1}


def test_a_name_that_is_empty_once_cleaned_is_refused():
    for blank in ("\x00", " \x00 "):
        with pytest.raises(InvalidReport, match="must not be empty"):
            parse_report(valid(exception_type=blank))


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
