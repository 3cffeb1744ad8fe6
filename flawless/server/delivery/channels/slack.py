"""The Slack channel: each entry is one message POSTed to an incoming webhook.

Slack answers ``200 ok``, or 429 with ``Retry-After`` (about one message a second per
webhook): the outbox then holds every message to that webhook for as long as asked. Other
answers (``400 invalid_payload``, ``404 channel_not_found``, ``410 channel_is_archived``)
keep the message for a retry with backoff. The webhook URL is a secret: it never appears in
an error, only its host and digest (:func:`~flawless.server.core.channels.url_destination`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from flawless.server.core.channels import url_destination
from flawless.server.delivery.channels import DeliveryError
from flawless.server.delivery.channels.http import Answer, HttpClient, retry_after
from flawless.server.storage.records import OutboxMail


class SlackChannel:
    """Posts Block Kit messages to one Slack incoming webhook."""

    name = "slack"
    looks_before_repeating = False

    def __init__(self, webhook_url: str, http: HttpClient, clock: Any):
        self.destination = url_destination(webhook_url)
        self._url = webhook_url
        self._http = http
        self._clock = clock

    def deliver(self, entry: OutboxMail) -> defer.Deferred:
        """POST the entry's message."""
        return defer.ensureDeferred(self._deliver(entry))

    async def _deliver(self, entry: OutboxMail) -> None:
        if entry.destination != self.destination:
            raise DeliveryError(f"Slack webhook {entry.destination} is no longer configured")
        what = f"Slack webhook {self.destination}"
        answer: Answer = await self._http.request("POST", self._url, what, body=entry.message)
        if answer.ok:
            return
        wait = retry_after(answer.headers, self._clock.seconds())
        if answer.status == 429:
            raise DeliveryError(f"{what}: rate limited (429), retrying after "
                                f"{wait if wait is not None else 'a backoff'}s",
                                retry_after=wait)
        raise DeliveryError(self._http.redact(
            f"{what}: HTTP {answer.status} {answer.snippet()}"), retry_after=wait)
