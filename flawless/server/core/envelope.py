"""PURE: Sentry envelopes read strictly, within bounds.

An envelope is a JSON header line, then items: each a JSON header line (``type``, and
``length`` in bytes when the payload may hold line breaks) and its payload. Anything that
does not read exactly so (a header that is no JSON object, a length past the end, an item
type outside the protocol, more than MAX_ITEMS items) is refused whole with
:class:`BadEnvelope`, whose message says what and where; the HTTP layer answers it 4xx.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

MAX_ITEMS = 100
MAX_HEADER_BYTES = 64 * 1024
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")

# Item types of the Sentry protocol. Only events become reports; the rest are accepted and
# dropped (sessions, client reports, transactions, attachments, ...).
EVENT_TYPES = frozenset(("event",))
DROPPED_TYPES = frozenset((
    "transaction", "attachment", "session", "sessions", "client_report", "user_report",
    "feedback", "check_in", "profile", "profile_chunk", "replay_event", "replay_recording",
    "replay_video", "statsd", "metric_buckets", "span", "otel_span", "log", "otel_log",
    "trace_metric", "security", "raw_security", "nel", "form_data", "unreal_report",
))


class BadEnvelope(ValueError):
    """An envelope that cannot be read; the message says why."""


@dataclass(frozen=True)
class Item:
    """One item: its type, its header and its payload's bytes."""

    type: str
    header: dict[str, Any]
    payload: bytes


@dataclass(frozen=True)
class Envelope:
    """The envelope's header and its items, in order."""

    header: dict[str, Any]
    items: tuple[Item, ...]

    @property
    def events(self) -> tuple[Item, ...]:
        """The items that are events."""
        return tuple(item for item in self.items if item.type in EVENT_TYPES)


def _header(body: bytes, start: int, what: str) -> tuple[dict[str, Any], int]:
    """The JSON object on the line starting at ``start``, and where the next line starts."""
    end = body.find(b"\n", start)
    end = len(body) if end < 0 else end
    if end - start > MAX_HEADER_BYTES:
        raise BadEnvelope(f"{what} is longer than {MAX_HEADER_BYTES} bytes")
    try:
        header = json.loads(body[start:end])
    except (ValueError, RecursionError):
        raise BadEnvelope(f"{what} is not JSON") from None
    if not isinstance(header, dict):
        raise BadEnvelope(f"{what} is not a JSON object")
    return header, end + 1


def _item_type(header: dict[str, Any], what: str) -> str:
    kind = header.get("type")
    if not isinstance(kind, str) or not _TYPE.fullmatch(kind):
        raise BadEnvelope(f"{what} has no valid type")
    if kind not in EVENT_TYPES and kind not in DROPPED_TYPES:
        raise BadEnvelope(f"{what} has the unknown type {kind!r}")
    return kind


def _payload(body: bytes, start: int, length: Any, what: str) -> tuple[bytes, int]:
    """The payload starting at ``start`` and where the next item starts."""
    if length is None:
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        return body[start:end], end + 1
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise BadEnvelope(f"{what} has a length that is not a whole number of bytes")
    end = start + length
    if end > len(body):
        raise BadEnvelope(f"{what} claims {length} bytes but only {max(0, len(body) - start)} "
                          "follow: the envelope is cut short")
    if end < len(body) and body[end:end + 1] != b"\n":
        raise BadEnvelope(f"{what} is not followed by a line break after its {length} bytes")
    return body[start:end], end + 1


def parse_envelope(body: bytes, max_items: int = MAX_ITEMS) -> Envelope:
    """Read an envelope; raises :class:`BadEnvelope` for anything but a well-formed one."""
    if not body.strip():
        raise BadEnvelope("the envelope is empty")
    header, position = _header(body, 0, "the envelope header")
    items = []
    while position < len(body):
        if body[position:].strip() == b"":
            break  # trailing line breaks
        number = len(items) + 1
        if number > max_items:
            raise BadEnvelope(f"the envelope holds more than {max_items} items")
        what = f"item {number}"
        item_header, position = _header(body, position, f"the header of {what}")
        kind = _item_type(item_header, f"the header of {what}")
        payload, position = _payload(body, position, item_header.get("length"), what)
        items.append(Item(kind, item_header, payload))
    return Envelope(header, tuple(items))


def event_json(payload: bytes, what: str) -> dict[str, Any]:
    """The JSON object an event item (or a store body) holds."""
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise BadEnvelope(f"{what} is not JSON") from None
    if not isinstance(event, dict):
        raise BadEnvelope(f"{what} is not a JSON object")
    return event


def auth_key(header: str) -> Optional[str]:
    """The ``sentry_key`` of an ``X-Sentry-Auth`` header
    (``Sentry sentry_key=KEY, sentry_version=7, ...``), or None."""
    text = header.strip()
    if text[:7].lower() == "sentry ":
        text = text[7:]
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "sentry_key" and value.strip():
            return value.strip()
    return None
