"""What a client can hold on either port: connections, time, and request bodies in memory.

A :class:`GuardedSite` is a twisted.web ``Site`` whose listener

- holds at most ``max_connections`` connections, at most ``max_per_address`` from one
  address (a trusted proxy has no such limit): a connection past the per-address cap is
  answered 429 with ``Retry-After`` and closed at once, without parsing anything; when all
  ``max_connections`` are taken, the connection that has waited longest for a request's
  headers makes room (idle and slow clients go first, a request in progress is never cut),
  and only when every connection is busy with a request is the new one answered 503;
- gives each request ``header_timeout`` seconds, counted from the connection or from the
  previous answer, to send its line and headers, and ``body_timeout`` seconds after them to
  send its whole body (slow clients and chunked bodies that never end are answered 408 and
  closed; an idle connection is closed without a word);
- decides on each body once its headers are complete, before reading it (see
  :func:`make_guarded_request`): no credentials (401), too large (413), or past the budget
  of body bytes all connections may hold together (503 with ``Retry-After``).

The process's open-file limit is raised toward its hard limit at start and the connection
caps lowered to fit in it (:func:`open_file_limit`), so that the database, git and the rule
files always find a descriptor.
"""

from __future__ import annotations

import io
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

from twisted.internet import interfaces, protocol
from twisted.logger import Logger
from twisted.web import http, server

from flawless.server.core.admission import (ByteBudget, ConnectionTable, Refusal,
                                            TrustedProxies, address_group, wanted_open_files)

log = Logger()

ABORT_SECONDS = 5.0          # a closing connection whose client does not read is cut after this
LINGER_SECONDS = 2.0         # a refused body is read and dropped this long, so that its
                             # sender gets the answer instead of a reset
REFUSAL_LOG_SECONDS = 60.0   # at most one log line a minute about refused connections
RETRY_AFTER_SECONDS = 5


def raw_answer(status: int, reason: str, text: str, retry_after: Optional[int] = None,
               extra: bytes = b"") -> bytes:
    """A complete HTTP answer that closes the connection, written without twisted.web."""
    body = (text + "\n").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n".encode()
    return head + extra + b"\r\n" + body


def _refusal_answer(refusal: Refusal) -> bytes:
    reason = "Too Many Requests" if refusal.status == 429 else "Service Unavailable"
    return raw_answer(refusal.status, reason,
                      f"{refusal.status} {reason}: {refusal.reason}; retry later",
                      RETRY_AFTER_SECONDS)


REQUEST_TIMEOUT = raw_answer(408, "Request Timeout",
                             "408 Request Timeout: the request was not sent in time")


def client_address(request: server.Request, trusted: TrustedProxies) -> str:
    """The address a request comes from (``X-Forwarded-For`` believed only from a trusted
    proxy), worked out once per request."""
    known = getattr(request, "flawless_client", None)
    if known is not None:
        return known
    peer = getattr(request.getClientAddress(), "host", "") or ""
    found = peer
    if trusted:
        found = trusted.client_address(peer, [
            value.decode("latin-1")
            for value in request.requestHeaders.getRawHeaders(b"x-forwarded-for", [])])
    request.flawless_client = found  # type: ignore[attr-defined]
    return found


@dataclass(frozen=True)
class ConnectionBounds:
    """The limits of one listener (0: none)."""

    max_connections: int = 0
    max_per_address: int = 0
    header_timeout: float = 0.0
    body_timeout: float = 0.0


@dataclass
class ConnectionCounts:
    """What a listener refused and cut, for /check_health."""

    refused: int = 0
    evicted: int = 0
    timed_out: int = 0
    bodies_refused: int = 0


class _Refuse(protocol.Protocol):
    """A connection past a limit: one canned answer, then closed."""

    def __init__(self, answer: bytes):
        self._answer = answer

    def connectionMade(self) -> None:  # noqa: N802 - Twisted API
        assert self.transport is not None
        self.transport.write(self._answer)
        self.transport.loseConnection()


class GuardedChannel(http.HTTPChannel):
    """An HTTP/1.1 connection with a deadline for each request's headers and body."""

    site: "GuardedSite"
    group: Optional[str] = None
    _deadline: Any = None
    _heard = False   # whether a byte of the awaited request has arrived
    _refused = False

    def connectionMade(self) -> None:  # noqa: N802 - Twisted API
        super().connectionMade()
        self._expect(self.site.bounds.header_timeout)
        self.site.awaiting_headers(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted API
        if self._refused:
            return
        self._heard = True
        super().dataReceived(data)

    def refuse(self, answer: bytes) -> None:
        """Answer a request without reading its body, then close. The rest of what the
        client sends is read and dropped for a moment: closing with unread data would reset
        the connection, and the client would never see the answer."""
        self._refused = True
        self._cancel()
        self.site.first_to_go(self)
        self.transport.write(answer)
        if interfaces.IHalfCloseableDescriptor.providedBy(self.transport):
            self.transport.loseWriteConnection()
            self._deadline = self.callLater(LINGER_SECONDS, self.transport.abortConnection)
        else:
            self.loseConnection()

    def allHeadersReceived(self) -> None:  # noqa: N802 - Twisted API
        self._cancel()
        self.site.busy(self)
        super().allHeadersReceived()
        if self.length != 0 and not self._refused:
            self._expect(self.site.bounds.body_timeout)

    def allContentReceived(self) -> None:  # noqa: N802 - Twisted API
        if self._refused:
            return   # the rest of a refused body: nothing to answer
        self._cancel()
        super().allContentReceived()

    def requestDone(self, request: server.Request) -> None:  # noqa: N802 - Twisted API
        # Before the next request (already buffered, perhaps) is parsed: its headers, or
        # the client reading this answer, are awaited from now on.
        self._heard = bool(self._dataBuffer)
        self._expect(self.site.bounds.header_timeout)
        self.site.awaiting_headers(self)
        super().requestDone(request)

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted API
        self._cancel()
        super().connectionLost(reason)
        self.site.connection_closed(self)

    def _expect(self, seconds: float) -> None:
        self._cancel()
        if seconds:
            self._deadline = self.callLater(seconds, self._late)

    def _cancel(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if self.transport.disconnecting:
            self.transport.abortConnection()
            return
        if self._heard and not self._handlingRequest:
            self.site.counts.timed_out += 1
            self.transport.write(REQUEST_TIMEOUT)
        self._abortingCall = self.callLater(ABORT_SECONDS, self.transport.abortConnection)
        self.loseConnection()


class GuardedSite(server.Site):
    """A Site whose connections are counted, capped and given deadlines."""

    protocol = GuardedChannel  # type: ignore[assignment] - HTTP/1.1 only: no TLS here

    def __init__(self, root: Any, bounds: ConnectionBounds, trusted: TrustedProxies,
                 name: str, reactor: Any = None):
        super().__init__(root, reactor=reactor)
        self.bounds = bounds
        self.trusted = trusted
        self.name = name
        self.connections = ConnectionTable(bounds.max_connections, bounds.max_per_address)
        self.counts = ConnectionCounts()
        self._logged = (float("-inf"), 0)   # when refusals were last logged, and how many
        self.displayTracebacks = False
        # Channels waiting for a request's headers, longest waiting first.
        self._awaiting: OrderedDict[GuardedChannel, None] = OrderedDict()
        self._open: set[GuardedChannel] = set()

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 - Twisted API
        """A channel for the new connection, or a refusal when a limit is reached."""
        host = getattr(addr, "host", "") or ""
        group = None if host in self.trusted else address_group(host)
        refusal = self.connections.admit(group)
        if refusal is not None and refusal.status == 503 and self._evict():
            refusal = self.connections.admit(group)
        if refusal is not None:
            self._refused(refusal)
            return _Refuse(_refusal_answer(refusal))
        channel = super().buildProtocol(addr)
        channel.group = group
        self._open.add(channel)
        return channel

    def awaiting_headers(self, channel: GuardedChannel) -> None:
        """``channel`` waits for a request's headers (first in line to make room)."""
        self._awaiting.pop(channel, None)
        self._awaiting[channel] = None

    def first_to_go(self, channel: GuardedChannel) -> None:
        """``channel`` is closing: the first to be cut to make room."""
        self._awaiting[channel] = None
        self._awaiting.move_to_end(channel, last=False)

    def busy(self, channel: GuardedChannel) -> None:
        """``channel`` has a request's headers: it is not cut to make room."""
        self._awaiting.pop(channel, None)

    def _evict(self) -> bool:
        """Cut the connection waiting longest for headers; False when there is none."""
        if not self._awaiting:
            return False
        channel, _ = self._awaiting.popitem(last=False)
        self.counts.evicted += 1
        self._close_slot(channel)
        channel.transport.abortConnection()
        return True

    def connection_closed(self, channel: GuardedChannel) -> None:
        """A channel's connection ended: its slot is free."""
        self._awaiting.pop(channel, None)
        self._close_slot(channel)

    def _close_slot(self, channel: GuardedChannel) -> None:
        if channel in self._open:
            self._open.discard(channel)
            self.connections.release(channel.group)

    def _refused(self, refusal: Refusal) -> None:
        self.counts.refused += 1
        now, (logged_at, logged) = self.reactor.seconds(), self._logged
        if now - logged_at >= REFUSAL_LOG_SECONDS:
            log.warn("{name}: refusing connections ({reason}); {count} refused since the "
                     "last such line", name=self.name, reason=refusal.reason,
                     count=self.counts.refused - logged)
            self._logged = (now, self.counts.refused)

    def status(self) -> dict[str, int]:
        """Open, refused and timed-out connections, for /check_health."""
        return {"open": self.connections.open, "refused": self.counts.refused,
                "evicted": self.counts.evicted, "timed_out": self.counts.timed_out,
                "bodies_refused": self.counts.bodies_refused}


# -- bodies ---------------------------------------------------------------------------------

Authorized = Callable[[server.Request], bool]


def make_guarded_request(max_body_bytes: int, budget: ByteBudget, trusted: TrustedProxies,
                         authorized: Optional[Authorized] = None) -> type:
    """A twisted.web Request class that decides on a body once its headers are complete.

    Before a byte of the body is read it is refused, and the connection closed, when
    ``authorized`` says the request lacks credentials (401), when its declared length is over
    ``max_body_bytes`` (413), or when ``budget`` cannot hold it (503, or 429 when its address
    holds its share, with ``Retry-After``). A chunked body is counted as it arrives and cut
    the same way. What is held is given back when the request ends.
    """
    too_large = raw_answer(413, "Payload Too Large", f"413 Payload Too Large: the limit is "
                           f"{max_body_bytes} bytes after decompression")
    unauthorized = raw_answer(401, "Unauthorized", "401 Unauthorized: send Authorization: "
                              "Bearer KEY with one of the server's ingest keys",
                              extra=b'WWW-Authenticate: Bearer realm="flawless"\r\n')

    class GuardedRequest(server.Request):
        refused = False
        _received = 0
        _held = 0
        _group = ""

        def gotLength(self, length: Optional[int]) -> None:  # noqa: N802 - Twisted API
            # The body is bounded, so it stays in memory: twisted.web would spill one over
            # 100 kB (or of unknown length) to a temporary file.
            self.content = io.BytesIO()
            if length == 0:
                return
            if authorized is not None and not authorized(self):
                self._refuse(unauthorized)
                return
            if length is not None and length > max_body_bytes:
                self._refuse(too_large)
                return
            if budget.total:
                self._group = address_group(client_address(self, trusted))
                if length is not None:
                    self._hold(length)

        def _hold(self, size: int) -> bool:
            refusal = budget.reserve(self._group, size)
            if refusal is not None:
                self._refuse(_refusal_answer(refusal))
                return False
            self._held += size
            return True

        def _release(self) -> None:
            if self._held:
                budget.release(self._group, self._held)
                self._held = 0

        def finish(self) -> None:
            """Answered: what the body held is given back."""
            super().finish()
            self._release()

        def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted API
            super().connectionLost(reason)
            self._release()

        def _refuse(self, answer: bytes) -> None:
            if self.refused:
                return
            self.refused = True
            self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after this
            self.channel.site.counts.bodies_refused += 1
            self.channel.refuse(answer)

        def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted API
            if self.refused:
                return
            self._received += len(data)
            if self._received > max_body_bytes:
                self._refuse(too_large)
                return
            if budget.total and self._received > self._held and \
                    not self._hold(self._received - self._held):
                return
            self.content.write(data)

        def requestReceived(self, command: bytes, path: bytes,  # noqa: N802 - Twisted API
                            version: bytes) -> None:
            if not self.refused:
                super().requestReceived(command, path, version)

    return GuardedRequest


# -- the open-file limit --------------------------------------------------------------------

@dataclass(frozen=True)
class OpenFileLimit:
    """The soft RLIMIT_NOFILE before and after raising it, and the hard limit."""

    before: int
    soft: int
    hard: int


def open_file_limit(caps: tuple[int, ...]) -> OpenFileLimit:
    """Raise the soft open-file limit to what the connection caps need (to the hard limit
    when a cap is unlimited), as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = wanted_open_files(caps)
    target = hard if wanted is None else max(soft, wanted)
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    elif wanted is None:
        target = soft   # no finite hard limit to raise to: keep what we have
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warn("cannot raise the open-file limit from {soft} to {target}: {error}",
                     soft=soft, target=target, error=error)
            target = soft
    else:
        target = soft
    return OpenFileLimit(soft, target, hard)
