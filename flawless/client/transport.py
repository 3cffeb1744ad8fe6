"""The background sender: the application never waits on the network.

:meth:`Transport.submit` puts an item on a bounded queue and returns at once; when the queue
is full the item is dropped and counted. One daemon thread takes items off the queue, turns
them into report dicts (``prepare``, which scrubs them, or drops one by returning None), and
POSTs them as one JSON-RPC batch, gzip'd when large, with timeouts on connect and read.
When a server fails the next hostport is tried; when all fail the batch is kept and retried after an exponential backoff with
jitter; a 429 answer is honoured by waiting its ``Retry-After``. :meth:`Transport.flush`
waits, for a bounded time, until everything queued is settled. After ``os.fork()`` the child
starts with an empty queue and its own thread; the parent's reports stay the parent's.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import logging
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from flawless.backoff import backoff_delay

log = logging.getLogger("flawless.client")

MAX_RETRY_AFTER = 3600.0
_MAX_ANSWER_BYTES = 1 << 20


@dataclass(frozen=True)
class TransportOptions:
    """Bounds of the sender."""

    queue_size: int = 1000
    batch_size: int = 100
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    gzip_min_bytes: int = 4096
    first_backoff: float = 0.5
    max_backoff: float = 60.0
    periodic_interval: float = 30.0  # how often ``periodic`` is asked for held-back reports


@dataclass(frozen=True)
class Endpoint:
    """One server: where to connect and whether to use TLS."""

    host: str
    port: int
    tls: bool = False


def parse_hostport(hostport: str) -> Endpoint:
    """``host:port``, optionally prefixed with ``http://`` or ``https://``."""
    text = hostport.strip()
    tls = text.startswith("https://")
    text = text.split("://", 1)[-1].rstrip("/")
    if text.endswith("/rpc"):
        text = text[: -len("/rpc")]
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {hostport!r}")
    return Endpoint(host.strip("[]"), int(port), tls)


def retry_after_seconds(value: Optional[str], default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return default
    return min(max(when - time.time(), 0.0), MAX_RETRY_AFTER)


def rpc_batch(reports: Sequence[dict]) -> list[dict]:
    """A JSON-RPC 2.0 batch of ``record_error`` calls."""
    return [{"jsonrpc": "2.0", "id": index, "method": "record_error",
             "params": {"report": report}} for index, report in enumerate(reports)]


class Transport:
    """Bounded queue plus one sender thread; see the module docstring."""

    def __init__(self, hostports: Iterable[str], key: Optional[str],
                 prepare: Callable[[Any], Optional[dict]],
                 options: TransportOptions = TransportOptions(),
                 periodic: Optional[Callable[[], list]] = None) -> None:
        self.options = options
        self.key = key
        self.prepare = prepare
        self.periodic = periodic
        self.endpoints: tuple[Endpoint, ...] = tuple(parse_hostport(h) for h in hostports)
        self._reset_state()
        _transports.add(self)

    def _reset_state(self) -> None:
        self._queue: queue.Queue = queue.Queue(self.options.queue_size)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._outstanding = 0
        self._retry: list[dict] = []
        self._batch_limit = self.options.batch_size
        self._current = 0
        self._failures = 0
        self._not_before = 0.0
        self._rate_limited = False
        self._next_periodic = time.monotonic() + self.options.periodic_interval
        # One kept-open connection per server, used by the sender thread alone (after a
        # fork the child opens its own: the parent's sockets are not shared).
        self._connections: dict[Endpoint, http.client.HTTPConnection] = {}
        self.stats = {"submitted": 0, "sent": 0, "dropped_queue_full": 0, "rejected": 0,
                      "unprepared": 0, "dropped_before_send": 0, "failed_attempts": 0}

    def set_hostports(self, hostports: Iterable[str]) -> None:
        """Send to these servers from now on, in this order of preference."""
        self.endpoints = tuple(parse_hostport(h) for h in hostports)
        self._current = 0

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[name] += amount

    def submit(self, item: Any) -> bool:
        """Queue ``item`` without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count("dropped_queue_full")
            return False
        with self._lock:
            self._outstanding += 1
            self.stats["submitted"] += 1
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="flawless-sender",
                                                daemon=True)
                self._thread.start()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until every queued item is sent or dropped."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if not self._rate_limited:
                self._not_before = 0.0  # retry now rather than after the backoff
            self._wake.set()
            while self._outstanding > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
        return True

    def close(self, timeout: float) -> bool:
        """Flush for at most ``timeout`` seconds, then stop the sender thread."""
        flushed = self.flush(timeout)
        with self._lock:
            self._stopping = True
        self._wake.set()
        return flushed

    def _settle(self, count: int, stat: str) -> None:
        with self._lock:
            self.stats[stat] += count
            self._outstanding -= count
            self._settled.notify_all()

    def _run(self) -> None:
        while not self._stopping:
            batch = self._next_batch()
            if not batch:
                continue
            delay = self._not_before - time.monotonic()
            if delay > 0:
                self._retry = batch + self._retry
                self._wake.wait(delay)
                self._wake.clear()
                continue
            self._send(batch)
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _next_batch(self) -> list[dict]:
        """Items to send next: those to retry first, then new ones from the queue."""
        now = time.monotonic()
        if now >= self._next_periodic:
            self._next_periodic = now + self.options.periodic_interval
            for released in self.periodic() if self.periodic else ():
                self.submit(released)
        batch, self._retry = self._retry[: self._batch_limit], self._retry[self._batch_limit:]
        wait = 0.0 if batch else max(self._next_periodic - now, 0.01)
        while len(batch) < self._batch_limit:
            try:
                item = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
            except queue.Empty:
                break
            wait = 0.0
            try:
                prepared = self.prepare(item)
            except Exception:  # never let one odd report stop the sender
                log.debug("flawless: could not prepare a report", exc_info=True)
                self._settle(1, "unprepared")
                continue
            if prepared is None:
                self._settle(1, "dropped_before_send")
            else:
                batch.append(prepared)
        return batch

    def _send(self, batch: list[dict]) -> None:
        body = json.dumps(rpc_batch(batch), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if len(body) >= self.options.gzip_min_bytes:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        endpoints = self.endpoints
        for offset in range(len(endpoints)):
            index = (self._current + offset) % len(endpoints)
            try:
                status, retry_after, answer = self._post(endpoints[index], body, headers)
            except (OSError, http.client.HTTPException) as error:
                log.debug("flawless: %s:%s failed: %s", endpoints[index].host,
                          endpoints[index].port, error)
                self._count("failed_attempts")
                continue
            if status >= 500:
                self._count("failed_attempts")
                continue
            self._current = index
            self._answered(batch, status, retry_after, answer)
            return
        self._failures += 1
        self._rate_limited = False
        self._retry = batch + self._retry
        self._not_before = time.monotonic() + backoff_delay(
            self._failures, self.options.first_backoff, self.options.max_backoff)

    def _answered(self, batch: list[dict], status: int, retry_after: Optional[str],
                  answer: bytes) -> None:
        self._failures = 0
        if status == 429:
            self._rate_limited = True
            self._retry = batch + self._retry
            self._not_before = time.monotonic() + retry_after_seconds(
                retry_after, self.options.first_backoff)
            return
        self._rate_limited = False
        if status == 413 and len(batch) > 1:
            self._batch_limit = max(1, len(batch) // 2)
            self._retry = batch + self._retry
            return
        if status != 200:
            log.warning("flawless: the server refused %d report(s) with HTTP %d",
                        len(batch), status)
            self._settle(len(batch), "rejected")
            return
        self._batch_limit = self.options.batch_size
        rejected = _count_errors(answer)
        if rejected:
            self._settle(rejected, "rejected")
        self._settle(len(batch) - rejected, "sent")

    def _post(self, endpoint: Endpoint, body: bytes, headers: dict
              ) -> tuple[int, Optional[str], bytes]:
        """One request on the endpoint's kept-open connection (a new one when there is none,
        and once more on a new one when the kept one turns out closed by the server)."""
        kept = self._connections.pop(endpoint, None)
        if kept is not None:
            try:
                return self._exchange(endpoint, kept, body, headers)
            except (ConnectionError, http.client.RemoteDisconnected,
                    http.client.BadStatusLine):
                pass  # closed while idle: the request never reached the server's handler
        return self._exchange(endpoint, self._connect(endpoint), body, headers)

    def _connect(self, endpoint: Endpoint) -> http.client.HTTPConnection:
        connection_type = (http.client.HTTPSConnection if endpoint.tls
                           else http.client.HTTPConnection)
        connection = connection_type(endpoint.host, endpoint.port,
                                     timeout=self.options.connect_timeout)
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(self.options.read_timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    def _exchange(self, endpoint: Endpoint, connection: http.client.HTTPConnection,
                  body: bytes, headers: dict) -> tuple[int, Optional[str], bytes]:
        try:
            connection.request("POST", "/rpc", body, headers)
            response = connection.getresponse()
            answer = response.read(_MAX_ANSWER_BYTES)
        except BaseException:
            connection.close()
            raise
        if response.will_close or not response.isclosed():
            connection.close()  # closing, or an answer too long to read: not reusable
        else:
            self._connections[endpoint] = connection
        return response.status, response.getheader("Retry-After"), answer


def _count_errors(answer: bytes) -> int:
    """How many calls of a JSON-RPC batch answer failed (an invalid report, for instance)."""
    try:
        decoded = json.loads(answer)
    except ValueError:
        return 0
    answers = decoded if isinstance(decoded, list) else [decoded]
    return sum(1 for item in answers if isinstance(item, dict) and "error" in item)


_transports: "weakref.WeakSet[Transport]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for transport in list(_transports):
        transport._reset_state()


os.register_at_fork(after_in_child=_after_fork_in_child)
