"""What every way in on the report port shares: the ingest keys, the rate limits, the
inbox, and the answers that do not depend on the protocol (503 when nothing could be stored).

JSON-RPC (``rpc.py``), Sentry SDKs (``sentry.py``) and browser pages (``browser.py``) each
turn their requests into REPORTs; this gate decides whether a key may send, whether it or
its address is over its rate, and stores what they accepted, answering once it is durable.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Sequence

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server

from flawless.report import Report, report_to_dict
from flawless.server.connections import client_address
from flawless.server.core.admission import TrustedProxies
from flawless.server.ingest.inbox import InboxWriter
from flawless.server.ingest.keys import IngestKeys
from flawless.server.ingest.ratelimit import TokenBuckets
from flawless.server.storage.records import StorageUnavailable

log = Logger()


def inbox_payload(reports: Sequence[Report]) -> bytes:
    """The inbox form of reports that came another way: a JSON-RPC batch of
    ``record_error`` notifications, the form every stored request has."""
    return json.dumps([{"jsonrpc": "2.0", "method": "record_error",
                        "params": {"report": report_to_dict(report)}} for report in reports],
                      separators=(",", ":"), ensure_ascii=False).encode()


def finished(request: server.Request) -> bool:
    """Whether nothing more can be written to ``request``."""
    return bool(request.finished or request._disconnected)


class IngestGate:
    """Keys, rate limits and the inbox, shared by every way in."""

    def __init__(self, inbox: InboxWriter, keys: IngestKeys, clock: Any,
                 per_key: Optional[TokenBuckets] = None,
                 per_address: Optional[TokenBuckets] = None,
                 trusted: TrustedProxies = TrustedProxies()):
        self.inbox = inbox
        self.keys = keys
        self.clock = clock
        self._per_key = per_key or TokenBuckets(0, 0)
        self._per_address = per_address or TokenBuckets(0, 0)
        self._trusted = trusted

    def wait(self, request: server.Request, key: bytes, cost: int) -> Optional[float]:
        """Seconds to wait when over the rate, else None (``cost`` reports taken): a keyed
        request counts against its key only (many keys may share one address: a proxy, a
        NAT), one without a key against its client address (never stored)."""
        now = self.clock.seconds()
        if key:
            return self._per_key.take(key.decode(), cost, now)
        return self._per_address.take(client_address(request, self._trusted), cost, now)

    def store(self, request: server.Request, payload: bytes, reports: int,
              answer: Callable[[], bytes]) -> Any:
        """Store ``payload`` (an inbox payload of ``reports`` reports), then write
        ``answer()``; 503 when it cannot be stored. Returns NOT_DONE_YET."""
        stored: defer.Deferred = self.inbox.accept(payload, reports)
        stored.addCallback(lambda _: write(request, answer()))
        stored.addErrback(refuse_unstored, request)
        return server.NOT_DONE_YET


def write(request: server.Request, body: bytes) -> None:
    """Write the answer's body and finish, unless the client is gone."""
    if body == b"":
        request.setResponseCode(204)
    if not finished(request):
        request.write(body)
        request.finish()


def refuse_unstored(failure: Failure, request: server.Request) -> None:
    """Answer 503 with Retry-After: nothing of the request was stored."""
    if failure.check(StorageUnavailable):
        log.error("cannot store reports: {reason}", reason=failure.getErrorMessage())
    else:
        log.failure("storing reports failed", failure)
    if finished(request):
        return
    request.setResponseCode(503)
    request.setHeader(b"retry-after", b"5")
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.write(b"503 Service Unavailable: reports cannot be stored right now; "
                  b"nothing was accepted, retry later\n")
    request.finish()
