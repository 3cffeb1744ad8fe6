"""The outbox: delivers stored alerts through their channels, retrying until each is delivered.

It knows nothing of SMTP or HTTP: each entry names its channel and destination, and the
channel does the talking. An entry is marked sent right after its delivery; a failed one is
marked with its next attempt time (exponential backoff, or the wait the far end asked for),
and its destination waits until then too, so entries to one destination keep their order
and a far end that is down is not tried once per entry. A
restart resumes where this run stopped and nothing is delivered twice but for the one repeat
a crash between delivery and its record allows (the entry comes back with the same message
id; for a channel that can look whether it got through, the entry is marked as begun before
its delivery and comes back ``interrupted``, and the channel looks first).

Each pass also turns what the hourly bounds held back, once its hour is over, into digests.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Mapping, Optional

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from flawless.backoff import backoff_delay
from flawless.server.delivery.channels import Channel, DeliveryError
from flawless.server.delivery.composing import Composer
from flawless.server.delivery.digests import queue_digests
from flawless.server.storage.interface import Storage
from flawless.server.storage.records import OutboxMail
from flawless.server.threads import Runner

log = Logger()


class OutboxService(service.Service):
    """Delivers due outbox entries one at a time. Call :meth:`wake` (on the reactor thread)
    after queueing entries to deliver them at once rather than at the next poll."""

    name = "outbox"

    def __init__(self, storage: Storage, reader: Runner, writer: Runner,
                 channels: Mapping[str, Channel], composer: Composer, clock: Any,
                 poll_interval: float = 1.0,
                 max_backoff: float = 3600.0, first_retry: float = 2.0, batch_size: int = 20,
                 unit_random: Callable[[], float] = random.random) -> None:
        self._storage = storage
        self._reader = reader
        self._writer = writer
        self._channels = dict(channels)
        self._composer = composer
        self._clock = clock
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._first_retry = first_retry
        self._batch_size = batch_size
        self._unit_random = unit_random
        self._cycle: Optional[defer.Deferred] = None
        self._again = False
        self._timer: Any = None
        # Delivered but not yet recorded as such (the database failed): mark, never resend.
        self._unrecorded: set[int] = set()
        self.delivered = 0
        self.failed_attempts = 0

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Deliver whatever is due, and poll from now on."""
        super().startService()
        self.wake()

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Stop polling; fires once the entry in flight (if any) is settled."""
        super().stopService()
        self._cancel_timer()
        if self._cycle is None:
            return defer.succeed(None)
        idle: defer.Deferred = defer.Deferred()
        self._cycle.addBoth(lambda result: (idle.callback(None), result)[1])
        return idle

    def wake(self) -> None:
        """Look for due entries now rather than at the next poll."""
        if not self.running:
            return
        if self._cycle is not None:
            self._again = True
            return
        self._cancel_timer()
        self._cycle = defer.ensureDeferred(self._drain())
        self._cycle.addBoth(self._cycle_done)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _cycle_done(self, result: Any) -> Any:
        self._cycle = None
        if isinstance(result, Failure):
            log.failure("outbox delivery interrupted; retrying at the next poll", result)
        if self.running:
            delay = 0 if self._again else self._poll_interval
            self._again = False
            self._timer = self._clock.callLater(delay, self.wake)
        return None

    async def _drain(self) -> None:
        await self._writer.run(queue_digests, self._storage, self._composer,
                               self._clock.seconds())
        waiting: set[tuple[str, str]] = set()   # destinations that failed in this pass
        while self.running:
            entries = await self._reader.run(self._storage.due_mail, self._clock.seconds(),
                                             self._batch_size)
            if entries:  # what queued them must outlive a power loss before they leave
                await self._writer.run(self._storage.make_durable)
            for entry in entries:
                if not self.running:
                    return
                if (entry.channel, entry.destination) in waiting:
                    continue
                if not await self._send(entry):
                    waiting.add((entry.channel, entry.destination))
            if len(entries) < self._batch_size:
                return

    async def _send(self, entry: OutboxMail) -> bool:
        """Deliver one entry; return whether it was delivered."""
        if entry.mail_id not in self._unrecorded:
            channel = self._channels.get(entry.channel)
            try:
                if channel is None:
                    raise DeliveryError(f"the {entry.channel} channel is not configured")
                if channel.looks_before_repeating:
                    await self._writer.run(self._storage.mark_started, entry.mail_id,
                                           self._clock.seconds())
                await channel.deliver(entry)
            except Exception as error:  # noqa: BLE001 - any failure means: keep it, retry later
                await self._record_failure(entry, error)
                return False
            self._unrecorded.add(entry.mail_id)
        await self._writer.run(self._storage.mark_sent, entry.mail_id, self._clock.seconds())
        self._unrecorded.discard(entry.mail_id)
        self.delivered += 1
        log.info("{channel} {mail_id} delivered to {destination}", channel=entry.channel,
                 mail_id=entry.mail_id, destination=entry.destination or
                 ", ".join(entry.recipients))
        return True

    async def _record_failure(self, entry: OutboxMail, error: Exception) -> None:
        attempts = entry.attempts + 1
        delay = backoff_delay(attempts, self._first_retry, self._max_backoff, self._unit_random)
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            delay = max(delay, float(asked))
        self.failed_attempts += 1
        log.warn("{channel} {mail_id} not delivered (attempt {attempts}), retrying in "
                 "{delay:.0f}s: {error}", channel=entry.channel, mail_id=entry.mail_id,
                 attempts=attempts, delay=delay, error=error)
        await self._writer.run(self._storage.mark_failed, entry.mail_id, attempts,
                               self._clock.seconds() + delay,
                               str(error) or type(error).__name__)
