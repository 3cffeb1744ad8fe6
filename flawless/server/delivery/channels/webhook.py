"""The webhook channel: each entry is one signed JSON POST, as Standard Webhooks says.

Headers ``webhook-id`` (the entry's message id: the same on every retry, so a receiver
drops a repeat), ``webhook-timestamp`` (seconds, at the moment of sending) and
``webhook-signature``. Any 2xx is delivered; anything else is retried with backoff, after
``Retry-After`` when the receiver sent one (429, 503).
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import defer

from flawless.server.core.channels import url_destination
from flawless.server.core.signing import secret_key, signature
from flawless.server.delivery.channels import DeliveryError
from flawless.server.delivery.channels.http import HttpClient, retry_after
from flawless.server.storage.records import OutboxMail


class WebhookChannel:
    """Posts signed events to each of the configured webhook URLs."""

    name = "webhook"
    looks_before_repeating = False

    def __init__(self, urls: tuple[str, ...], secret: str, http: HttpClient, clock: Any):
        self._urls: Mapping[str, str] = {url_destination(url): url for url in urls}
        self._key = secret_key(secret)
        self._http = http
        self._clock = clock

    @property
    def destinations(self) -> tuple[str, ...]:
        """The destination names of the URLs."""
        return tuple(self._urls)

    def deliver(self, entry: OutboxMail) -> defer.Deferred:
        """POST the entry's event, signed now."""
        return defer.ensureDeferred(self._deliver(entry))

    async def _deliver(self, entry: OutboxMail) -> None:
        url = self._urls.get(entry.destination)
        what = f"webhook {entry.destination}"
        if url is None:
            raise DeliveryError(f"{what} is no longer configured")
        timestamp = int(self._clock.seconds())
        headers = {"webhook-id": entry.message_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": signature(self._key, entry.message_id, timestamp,
                                                  entry.message)}
        answer = await self._http.request("POST", url, what, headers=headers,
                                          body=entry.message)
        if not answer.ok:
            raise DeliveryError(self._http.redact(f"{what}: HTTP {answer.status} "
                                                  f"{answer.snippet()}"),
                                retry_after=retry_after(answer.headers, self._clock.seconds()))
