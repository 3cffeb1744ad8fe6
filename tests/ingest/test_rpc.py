"""The report port in-process: twisted.web's real request handling over an in-memory
transport, the inbox committing only when the test says, and a task.Clock for rate limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.task import Clock

from flawless.server.connections import ConnectionBounds, GuardedSite, make_guarded_request
from flawless.server.core.admission import ByteBudget, TrustedProxies
from flawless.server.ingest.gate import IngestGate
from flawless.server.ingest.inbox import InboxWriter
from flawless.server.ingest.keys import IngestKeys
from flawless.server.ingest.ratelimit import TokenBuckets
from flawless.server.ingest.rpc import RpcResource
from flawless.server.storage.records import StorageUnavailable
from flawless.server.storage.sqlite import SqliteStorage
from support.gitrepo import average_report
from support.http import Exchange, raw_request
from support.runners import ManualRunner
from twisted.web import resource

MAX_BODY = 64 * 1024


class Port:
    """The RPC resource of a server, over a real SQLite inbox written by a ManualRunner."""

    def __init__(self, tmp_path: Any, keys: tuple[str, ...] = (), per_key: float = 0,
                 per_address: float = 0, trusted: tuple[str, ...] = ()):
        self.clock = Clock()
        self.clock.advance(1_763_700_000.0)
        self.storage = SqliteStorage(str(tmp_path / "flawless.sqlite3"))
        self.writer = ManualRunner()
        self.stored = 0
        self.inbox = InboxWriter(self.storage, self.writer, self.clock, on_stored=self.count)
        self.inbox.startService()
        ingest_keys, proxies = IngestKeys(keys), TrustedProxies(trusted)
        rpc = RpcResource(IngestGate(self.inbox, ingest_keys, self.clock,
                                     per_key=TokenBuckets(per_key, per_key),
                                     per_address=TokenBuckets(per_address, per_address),
                                     trusted=proxies), MAX_BODY)
        root = resource.Resource()
        root.putChild(b"rpc", rpc)
        self.site = GuardedSite(root, ConnectionBounds(), proxies, "rpc", self.clock)
        self.site.requestFactory = make_guarded_request(
            MAX_BODY, ByteBudget(0, 0), proxies, ingest_keys.authorized)

    def count(self) -> None:
        self.stored += 1

    def post(self, payload: Any, headers: dict[str, str] = None, body: bytes = None,
             client_host: str = "127.0.0.1") -> Exchange:
        data = body if body is not None else json.dumps(payload).encode()
        return Exchange(self.site, client_host).send(raw_request(
            "POST", "/rpc", data, {"Content-Type": "application/json", **(headers or {})}))


def call(method: str, params: Any = None, request_id: Any = 1) -> dict:
    payload = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        payload["params"] = params
    return payload


@pytest.fixture
def port(tmp_path) -> Port:
    return Port(tmp_path)


def test_a_report_is_answered_only_once_its_commit_is_done(port: Port) -> None:
    exchange = port.post(call("record_error", {"report": average_report()}))
    assert not exchange.answered() and port.storage.inbox_depth() == 0
    assert port.writer.run_all() == 1
    answer = json.loads(exchange.response().body)
    assert answer == {"jsonrpc": "2.0", "id": 1, "result": {"accepted": True}}
    assert port.storage.inbox_depth() == 1 and port.stored == 1


def test_requests_arriving_during_a_commit_share_the_next_one(port: Port) -> None:
    first = port.post(call("record_error", {"report": average_report()}))
    waiting = [port.post(call("record_error", {"report": average_report()}, n))
               for n in range(2, 6)]
    assert len(port.writer.queued) == 1
    port.writer.run_all()
    assert first.answered() and all(exchange.answered() for exchange in waiting)
    assert port.storage.inbox_depth() == 5
    assert len(port.storage._query("SELECT id FROM inbox")) == 5
    assert port.stored == 2  # two commits: the first request, then the four that waited


def test_ping_answers_without_touching_the_inbox(port: Port) -> None:
    exchange = port.post(call("ping"))
    assert json.loads(exchange.response().body)["result"] is True
    assert port.writer.queued == []


def test_a_failed_commit_answers_503_and_accepts_nothing(port: Port, monkeypatch) -> None:
    def full(*args: Any) -> None:
        raise StorageUnavailable("database or disk is full")

    monkeypatch.setattr(port.storage, "add_to_inbox", full)
    exchange = port.post(call("record_error", {"report": average_report()}))
    port.writer.run_all()
    response = exchange.response()
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert b"accepted" not in response.body.replace(b"nothing was accepted", b"")


def test_stopping_the_inbox_waits_for_the_commit_in_flight(port: Port) -> None:
    exchange = port.post(call("record_error", {"report": average_report()}))
    stopped = port.inbox.stopService()
    assert not stopped.called
    port.writer.run_all()
    assert stopped.called and exchange.answered()


def test_without_the_key_it_is_401(tmp_path) -> None:
    port = Port(tmp_path, keys=("k3y",))
    refused = port.post(call("ping")).response()
    assert refused.status == 401 and "Bearer" in refused.headers["WWW-Authenticate"]
    allowed = port.post(call("ping"), {"Authorization": "Bearer k3y"}).response()
    assert allowed.status == 200


def test_a_declared_length_over_the_limit_is_413_without_reading_the_body(port: Port) -> None:
    exchange = Exchange(port.site).send(
        b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1))
    assert exchange.response().status == 413
    assert exchange.transport.disconnecting


def test_the_address_rate_refills_with_the_clock(tmp_path) -> None:
    port = Port(tmp_path, per_address=2)
    assert [port.post(call("ping")).response().status for _ in range(3)] == [200, 200, 429]
    limited = port.post(call("ping")).response()
    assert limited.headers["Retry-After"] == "1"
    port.clock.advance(1.0)
    assert port.post(call("ping")).response().status == 200


def test_keyed_requests_count_against_their_key_only(tmp_path) -> None:
    # Behind a NAT or a proxy many keys share one address: a flooding key must not use up
    # the address's allowance of a quiet one.
    port = Port(tmp_path, keys=("loud", "quiet"), per_key=3, per_address=2)
    loud = [port.post(call("ping"), {"Authorization": "Bearer loud"}).response().status
            for _ in range(4)]
    assert loud == [200, 200, 200, 429]
    quiet = [port.post(call("ping"), {"Authorization": "Bearer quiet"}).response().status
             for _ in range(3)]
    assert quiet == [200, 200, 200]


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(tmp_path) -> None:
    port = Port(tmp_path, per_address=1, trusted=("10.9.0.0/16",))

    def ping(peer: str, forwarded: str) -> int:
        return port.post(call("ping"), {"X-Forwarded-For": forwarded},
                         client_host=peer).response().status

    # Through the proxy, each client has its own allowance ...
    assert [ping("10.9.0.5", "192.0.2.1"), ping("10.9.0.5", "192.0.2.2")] == [200, 200]
    assert ping("10.9.0.5", "192.0.2.1") == 429
    # ... and a client that claims another address gains nothing by it.
    assert ping("192.0.2.3", "198.51.100.1") == 200
    assert ping("192.0.2.3", "198.51.100.2") == 429


@pytest.mark.parametrize("body, code", [
    (b'{"jsonrpc": "2.0", "method": "ping", "id": NaN}', -32700),
    (b'{"jsonrpc": "2.0", "method": "ping", "id": Infinity}', -32700),
    (b'{"jsonrpc": "2.0", "method": "ping", "id": 1e400}', -32600),
    (b'[{"jsonrpc": "2.0", "method": "ping", "id": -1e400}]', -32600),
    (b'{"jsonrpc": "2.0", "method": "ping", "id": true}', -32600),
])
def test_an_id_that_json_cannot_echo_is_refused_with_valid_json(port: Port, body, code) -> None:
    answer = port.post(None, body=body).response()
    assert answer.status == 200
    decoded = json.loads(answer.body, parse_constant=lambda name: pytest.fail(name))
    error = decoded[0] if isinstance(decoded, list) else decoded
    assert error["error"]["code"] == code and error["id"] is None


def test_a_body_without_the_key_is_refused_before_it_is_read(tmp_path) -> None:
    port = Port(tmp_path, keys=("k3y",))
    head = raw_request("POST", "/rpc", b"", {"Content-Type": "application/json"}).replace(
        b"Content-Length: 0", b"Content-Length: 60000")
    exchange = Exchange(port.site).send(head + b"[")
    assert exchange.response().status == 401 and exchange.transport.disconnecting
