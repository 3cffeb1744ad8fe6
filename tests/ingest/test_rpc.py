"""The report port in-process: twisted.web's real request handling over an in-memory
transport, the inbox committing only when the test says, and a task.Clock for rate limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.task import Clock

from flawless.server.ingest.gate import IngestGate
from flawless.server.ingest.http import make_bounded_request
from flawless.server.ingest.inbox import InboxWriter
from flawless.server.ingest.ratelimit import TokenBuckets
from flawless.server.ingest.rpc import RpcResource
from flawless.server.storage.records import StorageUnavailable
from flawless.server.storage.sqlite import SqliteStorage
from support.gitrepo import average_report
from support.http import Exchange, raw_request
from support.runners import ManualRunner
from twisted.web import resource, server

MAX_BODY = 64 * 1024


class Port:
    """The RPC resource of a server, over a real SQLite inbox written by a ManualRunner."""

    def __init__(self, tmp_path: Any, keys: tuple[str, ...] = (), per_key: float = 0,
                 per_address: float = 0):
        self.clock = Clock()
        self.clock.advance(1_763_700_000.0)
        self.storage = SqliteStorage(str(tmp_path / "flawless.sqlite3"))
        self.writer = ManualRunner()
        self.stored = 0
        self.inbox = InboxWriter(self.storage, self.writer, self.clock, on_stored=self.count)
        self.inbox.startService()
        rpc = RpcResource(IngestGate(self.inbox, keys, self.clock,
                                     per_key=TokenBuckets(per_key, per_key),
                                     per_address=TokenBuckets(per_address, per_address)),
                          MAX_BODY)
        root = resource.Resource()
        root.putChild(b"rpc", rpc)
        self.site = server.Site(root)
        self.site.requestFactory = make_bounded_request(MAX_BODY)

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
