"""Sentry envelopes: read exactly, refused whole when they are not well formed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flawless.server.core.envelope import (MAX_ITEMS, BadEnvelope, auth_key, event_json,
                                           parse_envelope)

EVENT = json.dumps({"event_id": "aa1a4f9a68c04be7bc867c2ca6b8c6ba", "message": "a\nb"}).encode()


def envelope(*items: tuple[dict, bytes], header: bytes = b'{"event_id":"aa"}') -> bytes:
    return header + b"\n" + b"".join(json.dumps(item).encode() + b"\n" + payload + b"\n"
                                     for item, payload in items)


def test_items_with_and_without_length_and_trailing_newlines():
    body = envelope(({"type": "event", "length": len(EVENT)}, EVENT),
                    ({"type": "session"}, b'{"sid":"x"}')) + b"\n\n"
    parsed = parse_envelope(body)
    assert parsed.header == {"event_id": "aa"}
    assert [item.type for item in parsed.items] == ["event", "session"]
    assert [item.payload for item in parsed.events] == [EVENT]
    assert parsed.items[1].payload == b'{"sid":"x"}'


def test_the_last_payload_may_end_without_a_line_break():
    body = b'{}\n{"type":"event","length":2}\n{}'
    assert parse_envelope(body).items[0].payload == b"{}"
    assert parse_envelope(b'{}\n{"type":"event"}\n{}').items[0].payload == b"{}"


@pytest.mark.parametrize("body, reason", [
    (b"", "empty"),
    (b"not json\n", "the envelope header is not JSON"),
    (b"[1]\n", "the envelope header is not a JSON object"),
    (b'{}\n{"type":"event","length":100}\n{}', "claims 100 bytes but only 2 follow"),
    (b'{}\n{"type":"event","length":1}\n{}\n', "is not followed by a line break"),
    (b'{}\n{"type":"event","length":-1}\n{}', "not a whole number"),
    (b'{}\n{"type":"event","length":"2"}\n{}', "not a whole number"),
    (b'{}\n{"type":"hologram"}\n{}', "unknown type 'hologram'"),
    (b'{}\n{"length":2}\n{}', "no valid type"),
    (b'{}\n{"type":"Event; DROP"}\n{}', "no valid type"),
    (b'{}\n["type"]\n{}', "the header of item 1 is not a JSON object"),
    (b'{}\n' + b'[' * 60000 + b'\n', "the header of item 1 is not JSON"),
    (b'{}\n' + b'x' * 70000 + b'\n', "longer than 65536 bytes"),
])
def test_a_malformed_envelope_is_refused_with_the_reason(body, reason):
    with pytest.raises(BadEnvelope, match=reason):
        parse_envelope(body)


def test_more_items_than_the_limit_are_refused():
    body = envelope(*[({"type": "session"}, b"{}")] * (MAX_ITEMS + 1))
    with pytest.raises(BadEnvelope, match=f"more than {MAX_ITEMS} items"):
        parse_envelope(body)
    assert len(parse_envelope(envelope(*[({"type": "session"}, b"{}")] * MAX_ITEMS)).items) \
        == MAX_ITEMS


@given(st.binary(max_size=400))
def test_any_bytes_are_read_or_refused_with_bad_envelope(body):
    try:
        parse_envelope(body)
    except BadEnvelope:
        pass


def test_event_payloads_must_be_json_objects():
    assert event_json(b'{"a": 1}', "item")["a"] == 1
    for payload in (b"[]", b"\xff", b"{", b"[" * 100000):
        with pytest.raises(BadEnvelope):
            event_json(payload, "item")


def test_keys_from_the_auth_header():
    assert auth_key("Sentry sentry_key=abc, sentry_version=7, sentry_client=x/1") == "abc"
    assert auth_key("sentry_version=7,sentry_key=abc") == "abc"
    assert auth_key("Sentry sentry_version=7") is None and auth_key("") is None
