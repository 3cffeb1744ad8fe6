"""Where alerts go. Each channel delivers one outbox entry at a time behind one interface.

To add a channel: a module here with a class that has a ``name`` (the word used in
``alert_channels``) and ``deliver(entry) -> Deferred``, firing once the far end accepted the
entry and failing with :class:`DeliveryError` otherwise; the outbox retries it with backoff
(after ``retry_after`` seconds when the far end said how long to wait) until it is
delivered, and records it as sent, so each entry is delivered once.
"""

from __future__ import annotations

from typing import Optional, Protocol

from twisted.internet import defer

from flawless.server.storage.records import OutboxMail


class DeliveryError(Exception):
    """An entry could not be delivered now; its message never carries a secret."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class Channel(Protocol):
    """One way alerts leave the server."""

    name: str
    # Whether the channel can tell that an interrupted delivery reached the far end (an
    # issue tracker can look for its marker): the outbox then records when each delivery
    # begins, a durable write that the others are spared.
    looks_before_repeating: bool

    def deliver(self, entry: OutboxMail) -> defer.Deferred:
        """Fires once ``entry`` is delivered; fails with :class:`DeliveryError`."""
