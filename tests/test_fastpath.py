"""The acknowledgement's fast path agrees with the wire schema: it only lets through bodies
whose every report parse_report keeps exactly as it came."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from flawless.report import InvalidReport, _plain_report, stored_form
from flawless.server.ingest.fastpath import storable_record_calls
from test_report import NEARLY_VALID, NOTEBOOK_FRAME, REPORTS, valid


def call(report, request_id=1, **extra):
    data = {"jsonrpc": "2.0", "id": request_id, "method": "record_error",
            "params": {"report": report}}
    data.update(extra)
    return data


@settings(max_examples=300, deadline=None)
@given(st.lists(REPORTS | NEARLY_VALID, min_size=1, max_size=3), st.booleans())
def test_only_reports_kept_as_they_are_take_the_fast_path(reports, as_batch):
    calls = [call(report, number) for number, report in enumerate(reports)]
    body = json.dumps(calls if as_batch else calls[0]).encode()
    if storable_record_calls(body) is not None:
        assert all(_plain_report(report) for report in (reports if as_batch else reports[:1]))


def test_a_typical_batch_takes_the_fast_path_with_its_ids():
    body = json.dumps([call(valid(), 1), call(valid(), "b"),
                       {"jsonrpc": "2.0", "method": "record_error",
                        "params": {"report": valid()}}]).encode()
    fast = storable_record_calls(body)
    assert fast is not None
    assert (fast.ids, fast.calls, fast.is_batch) == ((1, "b"), 3, True)
    single = storable_record_calls(json.dumps(call(valid(), None)).encode())
    assert (single.ids, single.calls, single.is_batch) == ((None,), 1, False)


def test_the_optional_fields_of_a_typical_report_take_the_fast_path():
    report = valid()
    assert {"level", "tags", "request", "user", "chained"} <= set(report)
    assert storable_record_calls(json.dumps(call(report)).encode()) is not None
    minimal = {"exception_type": "builtins.KeyError", "exception_message": "",
               "traceback": [{"filename": "a.py", "line_number": 1, "function_name": "f"}],
               "chained": [{"exception_type": "E", "exception_message": "", "traceback": []}],
               "request": {}, "tags": {}}
    assert storable_record_calls(json.dumps(call(minimal)).encode()) is not None


def test_everything_else_takes_the_general_path():
    others = [
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        call(valid(extra=1)),
        call(valid(), extra=1),
        call(valid(exception_message="x" * 20000)),
        call(valid(hostname="web\u0000")),
        call(valid(hostname="\ud800")),
        call(valid(exception_type="   ")),
        call(valid(error_count=True)),
        call(valid(), request_id=1.5),
        call(valid(level="fatal")),
        call(valid(tags={"release": 3})),
        call(valid(tags={f"t{n}": "v" for n in range(33)})),
        call(valid(request={"method": "GET", "body": "card=4111"})),
        call(valid(request={"headers": {"Accept": "x" * 1025}})),
        call(valid(user={"id": "42", "email": "ann@example.com"})),
        call(valid(user={})),
        call(valid(chained=[])),
        call(valid(chained=[{"exception_type": " ", "exception_message": "",
                             "traceback": []}])),
        call(valid(chained=[{"exception_type": "builtins.KeyError", "exception_message": "",
                             "traceback": [{"filename": " ", "line_number": 1,
                                            "function_name": "f"}]}])),
        call(valid(chained=[{"exception_type": "E", "exception_message": "",
                             "traceback": [], "cause": "x"}])),
        call(valid(chained=[{"exception_type": "E", "exception_message": "", "traceback": []}]
                   * 9)),
        [call(valid()), {"jsonrpc": "2.0", "id": 2, "method": "ping"}],
        [],
    ]
    for body in others:
        assert storable_record_calls(json.dumps(body).encode()) is None, body
    assert storable_record_calls(b'{"jsonrpc": "2.0", "method": "\x80"}') is None
    assert storable_record_calls(b"[" * 100000) is None


def test_a_report_with_a_notebook_cell_takes_the_general_path_and_keeps_its_cell():
    report = valid(traceback=[NOTEBOOK_FRAME])
    assert storable_record_calls(json.dumps(call(report)).encode()) is None
    assert stored_form(report) == report
    bad = valid(traceback=[{**NOTEBOOK_FRAME, "cell": {"line": 1, "id": "a/b"}}])
    assert storable_record_calls(json.dumps(call(bad)).encode()) is None
    with pytest.raises(InvalidReport):
        stored_form(bad)
