"""HTTP for the channels: treq on the reactor, one timeout for the whole exchange, bounded
answers, no redirects followed, and errors that never carry a token or a secret URL."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from twisted.internet import defer, protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from flawless import __version__
from flawless.server.core.redaction import redact
from flawless.server.delivery.channels import DeliveryError

MAX_ANSWER_BYTES = 16 * 1024 * 1024
USER_AGENT = f"flawless/{__version__}"
DEFAULT_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers (names lower-cased, last value kept) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300

    def snippet(self, limit: int = 200) -> str:
        """The start of the body as one line of printable text, for an error message."""
        text = self.body[:limit * 4].decode("utf-8", "replace")
        return " ".join("".join(char if char.isprintable() else " " for char in text)
                        .split())[:limit]


def retry_after(headers: Mapping[str, str], now: float) -> Optional[float]:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date), if any."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - now)


class _BoundedReader(protocol.Protocol):
    """Reads a body up to a limit; more is an error that closes the connection."""

    def __init__(self, limit: int):
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self.done: defer.Deferred = defer.Deferred(self._cancel)

    def _cancel(self, _: defer.Deferred) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted API
        if self.done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.done.errback(DeliveryError(f"the answer is larger than {self._limit} bytes"))
            self._cancel(self.done)
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)


class HttpClient:
    """Requests with a deadline (the reactor's clock), whose failures are DeliveryErrors
    with ``secrets`` masked."""

    def __init__(self, treq: Any, clock: Any, timeout: float, secrets: Sequence[str] = (),
                 max_answer_bytes: int = MAX_ANSWER_BYTES):
        self._treq = treq
        self._clock = clock
        self._timeout = timeout
        self._secrets = tuple(secret for secret in secrets if secret)
        self._max_answer_bytes = max_answer_bytes

    def redact(self, text: str) -> str:
        """``text`` with this client's secrets masked."""
        return redact(text, self._secrets)

    def request(self, method: str, url: str, what: str,
                headers: Optional[Mapping[str, str]] = None,
                body: Optional[bytes] = None) -> defer.Deferred:
        """Fires with the :class:`Answer` (any status); fails with DeliveryError naming
        ``what`` (words without secrets) when no answer came in time."""
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                       **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        sent = self._treq.request(method, url, headers={name: [value] for name, value in
                                                        all_headers.items()},
                                  data=body, allow_redirects=False, unbuffered=True,
                                  reactor=self._clock)
        sent.addCallback(self._read)
        timer = self._clock.callLater(self._timeout, sent.cancel)

        def settle(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        sent.addBoth(settle)
        sent.addErrback(self._failed, what)
        return sent

    def _read(self, response: Any) -> defer.Deferred:
        reader = _BoundedReader(self._max_answer_bytes)
        response.deliverBody(reader)
        headers = {name.decode("latin-1").lower(): values[-1].decode("latin-1")
                   for name, values in response.headers.getAllRawHeaders()}
        reader.done.addCallback(lambda body: Answer(response.code, headers, body))
        return reader.done

    def _failed(self, failure: Failure, what: str) -> None:
        if failure.check(defer.CancelledError):
            reason = f"no answer within {self._timeout:g}s"
        elif failure.check(DeliveryError):
            reason = str(failure.value)
        else:
            reason = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        # "from None": the original failure is left out so nothing can carry a secret.
        raise DeliveryError(self.redact(f"{what}: {reason}")) from None
