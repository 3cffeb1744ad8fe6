"""Connections in-process: twisted.web's real parser behind a GuardedSite, a clock the test
moves, in-memory transports. Slow headers and bodies are cut at their deadline, connections
past the caps are refused at once, a body is refused before it is read when it has no key or
the memory budget cannot hold it, and what was held is given back."""

from __future__ import annotations

import json

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web import resource, server

from flawless.server.connections import ConnectionBounds, GuardedSite, make_guarded_request
from flawless.server.core.admission import ByteBudget, TrustedProxies
from flawless.server.ingest.keys import IngestKeys

MAX_BODY = 64 * 1024


class Echo(resource.Resource):
    """Answers a POST with the size of its body, a GET with "ok"."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802
        return b"ok"

    def render_POST(self, request: server.Request) -> bytes:  # noqa: N802
        return str(len(request.content.getvalue())).encode()


class Listener:
    """A GuardedSite as the server builds it, with connections made by the test."""

    def __init__(self, keys: tuple[str, ...] = (), budget: int = 0,
                 trusted: tuple[str, ...] = (), **bounds: float):
        self.clock = MemoryReactorClock()
        self.budget = ByteBudget(budget, max(budget // 4, min(budget, MAX_BODY)))
        proxies = TrustedProxies(trusted)
        self.site = GuardedSite(Echo(), ConnectionBounds(**bounds), proxies, "test", self.clock)
        self.site.requestFactory = make_guarded_request(MAX_BODY, self.budget, proxies,
                                                        IngestKeys(keys).authorized)

    def connect(self, host: str = "127.0.0.1") -> "Connection":
        return Connection(self, host)


class Connection:
    def __init__(self, listener: Listener, host: str):
        address = IPv6Address("TCP", host, 40000) if ":" in host else \
            IPv4Address("TCP", host, 40000)
        self.transport = StringTransport(peerAddress=address)
        self.protocol = listener.site.buildProtocol(address)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> "Connection":
        self.protocol.dataReceived(data)
        return self

    @property
    def answer(self) -> bytes:
        return self.transport.value()

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else 0

    @property
    def closing(self) -> bool:
        return self.transport.disconnecting

    def lost(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


def post_head(length: int, *headers: str) -> bytes:
    lines = ["POST /x HTTP/1.1", "Host: x", f"Content-Length: {length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


GET = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n"


# -- deadlines ------------------------------------------------------------------------------

def test_headers_sent_a_byte_at_a_time_are_cut_at_the_header_deadline():
    listener = Listener(header_timeout=10, body_timeout=30)
    slow = listener.connect()
    for byte in b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ":
        slow.send(bytes([byte]))
        listener.clock.advance(0.25)   # a byte every quarter second: never idle for long
    assert not slow.closing
    listener.clock.advance(10)
    assert slow.closing and slow.status == 408
    assert listener.site.status()["timed_out"] == 1


def test_a_connection_that_never_speaks_is_closed_without_an_answer():
    listener = Listener(header_timeout=10)
    idle = listener.connect()
    listener.clock.advance(10)
    assert idle.closing and idle.answer == b""


def test_a_chunked_body_that_never_ends_is_cut_at_the_body_deadline():
    listener = Listener(header_timeout=10, body_timeout=30)
    endless = listener.connect().send(
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(40):
        endless.send(b"1\r\na\r\n")
        listener.clock.advance(1)
    assert endless.closing and endless.status == 408


def test_a_declared_body_sent_too_slowly_is_cut_at_the_body_deadline():
    listener = Listener(header_timeout=10, body_timeout=30)
    slow = listener.connect().send(post_head(1000))
    for _ in range(29):
        slow.send(b"a")
        listener.clock.advance(1)
    assert not slow.closing
    listener.clock.advance(1)
    assert slow.closing and slow.status == 408


def test_keep_alive_connections_get_a_fresh_deadline_for_each_request():
    listener = Listener(header_timeout=10, body_timeout=30)
    client = listener.connect()
    for _ in range(5):
        listener.clock.advance(9)
        client.send(GET)
        assert client.answer.endswith(b"ok") and not client.closing
        client.transport.clear()
    listener.clock.advance(10)
    assert client.closing and client.answer == b""   # idle after its last answer


def test_a_closing_client_that_does_not_read_is_cut():
    listener = Listener(header_timeout=10)
    client = listener.connect().send(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert client.answer.endswith(b"ok") and client.closing
    listener.clock.advance(10)
    assert client.transport.disconnecting  # aborted: StringTransport keeps the flag


# -- connection caps ------------------------------------------------------------------------

def test_connections_past_the_per_address_cap_are_refused_at_once_and_others_served():
    listener = Listener(max_connections=10, max_per_address=3)
    held = [listener.connect("10.0.0.1") for _ in range(3)]
    refused = listener.connect("10.0.0.1")
    assert refused.status == 429 and refused.closing and b"Retry-After: " in refused.answer
    assert listener.connect("10.0.0.2").send(GET).answer.endswith(b"ok")
    held[0].lost()
    assert listener.connect("10.0.0.1").send(GET).answer.endswith(b"ok")
    assert listener.site.status()["refused"] == 1


def test_when_every_slot_is_taken_the_connection_idle_longest_makes_room():
    listener = Listener(max_connections=4, max_per_address=0)
    held = [listener.connect(f"10.0.0.{n}") for n in range(1, 5)]
    held[0].send(GET)   # answered, then idle again: now the last in line
    newcomer = listener.connect("10.0.0.9").send(GET)
    assert newcomer.answer.endswith(b"ok")
    assert [connection.closing for connection in held] == [False, True, False, False]
    assert listener.site.status()["evicted"] == 1
    held[1].lost()   # the abort completes: its slot was already given to the newcomer
    assert listener.site.status()["open"] == 4


def test_connections_busy_with_a_request_are_never_cut_to_make_room():
    listener = Listener(max_connections=4, max_per_address=0)
    busy = [listener.connect(f"10.0.0.{n}").send(post_head(100) + b"x") for n in range(1, 5)]
    refused = listener.connect("10.0.0.9")
    assert refused.status == 503 and b"Retry-After: " in refused.answer
    assert not any(connection.closing for connection in busy)
    busy[2].lost()
    assert listener.site.status()["open"] == 3
    assert listener.connect("10.0.0.9").send(GET).answer.endswith(b"ok")


def test_ipv6_addresses_of_one_subscriber_share_the_per_address_cap():
    listener = Listener(max_connections=10, max_per_address=2)
    listener.connect("2001:db8:1:1::1")
    listener.connect("2001:db8:1:1::2")
    assert listener.connect("2001:db8:1:1::ffff").status == 429
    assert listener.connect("2001:db8:1:2::1").send(GET).answer.endswith(b"ok")


def test_a_trusted_proxy_has_no_per_address_cap():
    listener = Listener(max_connections=10, max_per_address=2, trusted=("10.9.0.0/16",))
    proxied = [listener.connect("10.9.0.5") for _ in range(6)]
    assert all(not connection.closing for connection in proxied)
    assert listener.connect("10.0.0.1") and listener.connect("10.0.0.1")
    assert listener.connect("10.0.0.1").status == 429


# -- bodies ---------------------------------------------------------------------------------

def test_a_body_without_the_key_is_refused_401_before_it_is_read():
    listener = Listener(keys=("k3y",), budget=MAX_BODY * 4)
    stranger = listener.connect().send(post_head(MAX_BODY, "Expect: 100-continue"))
    assert stranger.status == 401 and stranger.closing
    assert b"100 Continue" not in stranger.answer
    stranger.send(b"x" * 1000)
    assert listener.budget.held == 0
    keyed = listener.connect().send(post_head(3, "Authorization: Bearer k3y") + b"abc")
    assert keyed.answer.endswith(b"\r\n3")


def test_a_declared_length_over_the_limit_is_413_before_it_is_read():
    listener = Listener()
    big = listener.connect().send(post_head(MAX_BODY + 1))
    assert big.status == 413 and big.closing


def test_bodies_past_the_budget_are_refused_503_and_the_budget_is_given_back():
    listener = Listener(budget=MAX_BODY * 8)
    partial = [listener.connect(f"10.0.1.{n}").send(post_head(MAX_BODY) + b"x" * 100)
               for n in range(8)]
    assert all(not connection.closing for connection in partial)
    assert listener.budget.held == MAX_BODY * 8
    refused = listener.connect("10.0.2.1").send(post_head(1000))
    assert refused.status == 503 and b"Retry-After: " in refused.answer and refused.closing
    partial[0].lost()
    assert listener.budget.held == MAX_BODY * 7
    served = listener.connect("10.0.2.1").send(post_head(1000) + b"y" * 1000)
    assert served.answer.endswith(b"\r\n1000")
    assert listener.budget.held == MAX_BODY * 7   # a finished request holds nothing


def test_one_address_holds_at_most_a_quarter_of_the_budget():
    listener = Listener(budget=MAX_BODY * 8)
    mine = [listener.connect("10.0.3.1").send(post_head(MAX_BODY)) for _ in range(3)]
    assert [connection.status for connection in mine] == [0, 0, 429]
    assert listener.connect("10.0.3.2").send(post_head(MAX_BODY)).status == 0


def test_a_chunked_body_is_counted_as_it_arrives():
    listener = Listener(budget=MAX_BODY * 8)
    hog = [listener.connect(f"10.0.4.{n}").send(post_head(MAX_BODY)) for n in range(7)]
    hog.append(listener.connect("10.0.4.9").send(post_head(MAX_BODY // 2)))
    assert all(connection.status == 0 for connection in hog)
    chunked = listener.connect("10.0.5.1").send(
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY // 4, b"z" * (MAX_BODY // 4))
    chunked.send(chunk).send(chunk)
    assert not chunked.closing
    chunked.send(b"1\r\nz\r\n")
    assert chunked.status == 503 and chunked.closing
    chunked.lost()
    assert listener.budget.held == MAX_BODY * 7 + MAX_BODY // 2


def test_an_abandoned_body_gives_its_budget_back():
    listener = Listener(budget=MAX_BODY * 8)
    listener.connect().send(post_head(MAX_BODY) + b"x").lost()
    assert listener.budget.held == 0


@pytest.mark.parametrize("forwarded, expected_status", [
    ("10.0.6.1", 0),            # another client behind the proxy: its own share
    ("10.0.6.2, 10.9.0.7", 429),  # the same client as before, through two trusted proxies
])
def test_behind_a_trusted_proxy_the_budget_counts_by_the_forwarded_address(forwarded,
                                                                         expected_status):
    listener = Listener(budget=MAX_BODY * 8, trusted=("10.9.0.0/16",))
    for _ in range(2):
        listener.connect("10.9.0.5").send(post_head(MAX_BODY, "X-Forwarded-For: 10.0.6.2"))
    third = listener.connect("10.9.0.5").send(post_head(MAX_BODY, f"X-Forwarded-For: {forwarded}"))
    assert third.status == expected_status


def test_a_refused_connection_answers_json_free_plain_text():
    listener = Listener(max_connections=1)
    listener.connect().send(post_head(10))
    refused = listener.connect()
    head, _, body = refused.answer.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and b"text/plain" in head
    with pytest.raises(ValueError):
        json.loads(body)
