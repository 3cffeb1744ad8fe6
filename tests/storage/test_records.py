"""The stored form of reports: bodies in the inbox read back as the wire schema reads them."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from test_report import CLEAN_REPORTS

from flawless.report import InvalidReport, parse_report, stored_form
from flawless.server.storage.records import decode_report, encode_report, reports_in_payload

TEXT = st.text(max_size=40)
FRAME = st.fixed_dictionaries(
    {"filename": st.text(min_size=1, max_size=40).filter(str.strip),
     "line_number": st.integers(min_value=1, max_value=10**6),
     "function_name": st.text(min_size=1, max_size=20)},
    optional={"text": TEXT, "frame_locals": st.dictionaries(
        st.text(min_size=1, max_size=10), TEXT, max_size=4)})
VALID_REPORT = st.fixed_dictionaries(
    {"exception_type": st.text(min_size=1, max_size=30).filter(str.strip),
     "exception_message": TEXT, "traceback": st.lists(FRAME, min_size=1, max_size=4)},
    optional={"hostname": TEXT, "revision": st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
              "error_count": st.integers(min_value=1, max_value=10**6),
              "error_threshold": st.integers(min_value=1, max_value=100),
              "additional_info": TEXT,
              "context": st.dictionaries(st.text(min_size=1, max_size=10), st.one_of(
                  TEXT, st.booleans(), st.integers(min_value=-10**6, max_value=10**6),
                  st.floats(allow_nan=False, allow_infinity=False)), max_size=3),
              "timestamp": st.floats(min_value=0, max_value=4e9)})


@settings(max_examples=300, deadline=None)
@given(st.one_of(VALID_REPORT, CLEAN_REPORTS))
def test_stored_bodies_are_read_back_as_the_wire_schema_reads_them(data):
    try:
        report, kept = parse_report(data), stored_form(data)
    except InvalidReport:
        return  # refused at ingest: never stored
    body = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "record_error",
                        "params": {"report": data if kept is None else kept}}]).encode()
    assert reports_in_payload(body) == (report,)
    assert decode_report(encode_report(report)) == report
