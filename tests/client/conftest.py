"""Fixtures of the client tests: a JSON-RPC report sink, a black hole, a dead port, and a
client configured to send to them."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

import flawless.client
from flawless.report import InvalidReport, parse_report
from support.server import FlawlessProcess, start_server
from support.smtp import SmtpSink

ROOT = Path(__file__).resolve().parents[2]


class RpcSink:
    """A small real JSON-RPC server: validates each report with ``parse_report`` and keeps it.

    ``answer_next(status, headers)`` makes the next requests fail with an HTTP status
    (429 with Retry-After, 500, ...); ``requests`` records the headers and arrival times.
    """

    def __init__(self, key: Optional[str] = None, upstream: Optional[FlawlessProcess] = None,
                 smtp: Optional[SmtpSink] = None) -> None:
        self.key = key
        self.upstream = upstream
        self.smtp = smtp
        self.reports: list[dict] = []
        self.bodies: list[bytes] = []
        self.requests: list[dict] = []
        self.planned: list[tuple[int, dict]] = []
        self.lock = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.requests.append({"headers": dict(self.headers),
                                          "time": time.monotonic(), "size": len(body)})
                    planned = sink.planned.pop(0) if sink.planned else None
                if planned is not None:
                    return self.answer(planned[0], b"", planned[1])
                if sink.upstream is not None:
                    return self.answer(*sink.forward(body, self.headers))
                if sink.key and self.headers.get("Authorization") != f"Bearer {sink.key}":
                    return self.answer(401, b"")
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                payload = json.loads(body)
                calls = payload if isinstance(payload, list) else [payload]
                answers = [sink.handle(call) for call in calls]
                with sink.lock:
                    sink.bodies.append(body)
                    sink.lock.notify_all()
                result = answers if isinstance(payload, list) else answers[0]
                self.answer(200, json.dumps(result).encode())

            def answer(self, status: int, body: bytes, headers: Optional[dict] = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.hostport = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def handle(self, call: dict) -> dict:
        """Answer one JSON-RPC call as the real server would."""
        if call.get("method") != "record_error":
            return {"jsonrpc": "2.0", "id": call.get("id"),
                    "error": {"code": -32601, "message": "Method not found"}}
        report = call.get("params", {}).get("report")
        try:
            parse_report(report)
        except InvalidReport as error:
            return {"jsonrpc": "2.0", "id": call.get("id"),
                    "error": {"code": -32602, "message": "Invalid params", "data": error.errors}}
        with self.lock:
            self.reports.append(report)
        return {"jsonrpc": "2.0", "id": call.get("id"), "result": {"accepted": True}}

    def forward(self, body: bytes, headers) -> tuple[int, bytes, dict]:  # type: ignore[no-untyped-def]
        """Pass a request to the real server; keep the reports it accepted."""
        assert self.upstream is not None
        passed = {name: headers[name] for name in ("Authorization", "Content-Encoding")
                  if headers.get(name)}
        status, answer_headers, answer = self.upstream.post(body, passed)
        if status == 200 and answer:
            if headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            payload, result = json.loads(body), json.loads(answer)
            calls = payload if isinstance(payload, list) else [payload]
            results = {item.get("id"): item for item in
                       (result if isinstance(result, list) else [result])}
            with self.lock:
                self.bodies.append(body)
                for call in calls:
                    outcome = results.get(call.get("id"), {}).get("result")
                    if outcome == {"accepted": True}:
                        self.reports.append(call["params"]["report"])
                self.lock.notify_all()
        kept = {name: value for name, value in answer_headers.items()
                if name.lower() == "retry-after"}
        return status, answer, kept

    def answer_next(self, status: int, headers: Optional[dict] = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and ``headers``."""
        with self.lock:
            self.planned.extend([(status, headers or {})] * times)

    def wait_for_reports(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Wait until ``n`` reports arrived; return all received so far."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.reports) < n and time.monotonic() < deadline:
                self.lock.wait(max(deadline - time.monotonic(), 0.01))
            return list(self.reports)

    def all_text(self) -> str:
        """Every body received, decompressed, as text; with a real server behind, also
        everything it stored and every email it sent, once it has processed all."""
        with self.lock:
            texts = [body.decode("utf-8", "replace") for body in self.bodies]
        if self.upstream is not None:
            upstream = self.upstream
            assert upstream.wait_until(lambda: upstream.inbox_depth() == 0 and not upstream.query(
                "SELECT 1 FROM outbox WHERE sent_at IS NULL"))
            with upstream.db() as connection:
                texts.extend(connection.iterdump())
            if self.smtp is not None:
                texts.extend(message.as_string() for _, message in self.smtp.messages)
        return "\n".join(texts)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


INGEST_KEY = "test-ingest-key"


@contextmanager
def _proxied_server(directory: Path, repo_dir: Path, smtp: SmtpSink) -> Iterator[RpcSink]:
    server = start_server(directory, ingest_keys=INGEST_KEY, repo_dir=repo_dir,
                          smtp_hostport=smtp.hostport, rate_limit_per_address=0,
                          rate_limit_per_key=0)
    sink = RpcSink(key=INGEST_KEY, upstream=server, smtp=smtp)
    try:
        yield sink
    finally:
        sink.stop()
        server.stop()


@pytest.fixture
def report_sink_on(tmp_path, smtp_sink) -> Iterator[Callable[[Path], RpcSink]]:
    """``report_sink_on(repo_dir)``: the real flawless server on that repository (alerting
    at the first occurrence, mailing a real SMTP server, ingest key ``INGEST_KEY``), seen
    through a recording proxy that keeps what each client sent."""
    with ExitStack() as stack:
        yield lambda repo_dir: stack.enter_context(
            _proxied_server(tmp_path / "flawless", repo_dir, smtp_sink))


@pytest.fixture
def report_sink(report_sink_on) -> RpcSink:
    """``report_sink_on`` this project's own repository."""
    return report_sink_on(ROOT)


@pytest.fixture
def rpc_sink() -> Iterator[RpcSink]:
    """A sink whose answers tests can script (429, 500, ...)."""
    sink = RpcSink()
    yield sink
    sink.stop()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """host:port of a socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture
def down() -> str:
    """host:port where nothing listens."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def fresh_scope():
    """Each test starts with no tags, context, user or request, as a new thread would."""
    from flawless.client import scope

    token = scope.enter(scope.EMPTY_SCOPE)
    yield
    scope.leave(token)


@pytest.fixture
def use_client():
    """``use_client(hostports, key=None, **settings)`` installs a client (no hooks) and
    removes it after the test."""
    def install(hostports, key=None, **settings):
        return flawless.client.install(hostports=hostports, key=key, excepthook=False,
                                       threads=False, **settings)
    yield install
    flawless.client.uninstall()
