"""Digests: once an hour is over, what the hourly bounds held back for a destination goes
out as one entry, in the same transaction that marks the held entries as carried by it."""

from __future__ import annotations

from itertools import groupby
from typing import Mapping

from flawless.server.delivery.composing import Composer
from flawless.server.storage.interface import Storage

HELD_PER_PASS = 10000


def queue_digests(storage: Storage, composer: Composer, now: float,
                  limit: int = HELD_PER_PASS) -> int:
    """Replace the held entries whose hour is over by one digest per channel and
    destination; return the digests queued. Blocking: run it in the database writer."""
    held = storage.held_due(now, limit)
    if not held:
        return 0
    groups: Mapping = {key: list(entries) for key, entries in
                       groupby(held, key=lambda entry: (entry.channel, entry.destination))}
    with storage.transaction() as transaction:
        for (channel, destination), entries in groups.items():
            digest_id = transaction.queue_entry(
                composer.digest(channel, destination, entries, now), now)
            transaction.mark_digested([entry.entry_id for entry in entries], digest_id, now)
    return len(groups)
