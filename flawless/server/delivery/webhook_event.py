"""The JSON body of a webhook call, and its signature as the Standard Webhooks spec says.

A body is ``{"type", "timestamp", "data"}``: ``error.alert`` carries one alert's fields,
``error.digest`` the alerts held back by the hourly bound. The signature is in
:mod:`flawless.server.core.signing`.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from flawless.server.delivery.facts import AlertFacts, Held, iso_utc

DIGEST_ITEMS = 1000   # a digest lists this many alerts at most; "count" says how many were held


def alert_event(facts: AlertFacts, now: float) -> dict[str, Any]:
    """The ``error.alert`` event of one alert."""
    commit = facts.commit
    return {"type": "error.alert", "timestamp": iso_utc(now), "data": {
        "fingerprint": facts.fingerprint,
        "exception_type": facts.exception_type,
        "exception_message": facts.message,
        "filename": facts.path,
        "line_number": facts.line_number,
        "function_name": facts.function_name,
        "hostname": facts.hostname,
        "revision": facts.revision,
        "blame": None if commit is None else {
            "commit": commit.sha, "author_name": commit.author_name,
            "author_email": commit.author_email, "summary": commit.summary,
            "committed_at": iso_utc(commit.committed_at)},
        "count": facts.count,
        "first_seen": iso_utc(facts.first_seen),
        "last_seen": iso_utc(facts.last_seen),
        "url": facts.url,
        "recipients": list(facts.recipients),
        "traceback": [{"filename": frame.filename, "line_number": frame.line_number,
                       "function_name": frame.function_name, "text": frame.text,
                       "blamed": frame.blamed} for frame in facts.frames],
    }}


def digest_event(held: Sequence[Held], since: float, now: float) -> dict[str, Any]:
    """The ``error.digest`` event of the alerts held back since ``since``."""
    return {"type": "error.digest", "timestamp": iso_utc(now), "data": {
        "held_since": iso_utc(since), "count": len(held),
        "alerts": [{"title": item.title, "count": item.count, "url": item.url}
                   for item in held[:DIGEST_ITEMS]]}}


def encode(event: dict[str, Any]) -> bytes:
    """The request body of an event."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
