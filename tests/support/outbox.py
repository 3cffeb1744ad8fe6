"""Outbox entries for tests of the storage and the outbox."""

from __future__ import annotations

from flawless.server.storage.records import NewEntry


def entry(destination: str, channel: str = "email", body: bytes = b"Subject: x\r\n\r\nbody",
          message_id: str = "", summary: str = '{"title": "x"}') -> NewEntry:
    """An entry to ``destination`` (a mail to that address, by default)."""
    return NewEntry(channel, destination, body,
                    (destination,) if channel == "email" else (),
                    message_id or f"msg_{channel}_{destination}", summary)
