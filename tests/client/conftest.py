"""Fixtures of the client tests: a JSON-RPC report sink, a black hole, a dead port, and a
client configured to send to them."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Optional

import pytest

import flawless.client
from flawless.report import InvalidReport, parse_report


class RpcSink:
    """A small real JSON-RPC server: validates each report with ``parse_report`` and keeps it.

    ``answer_next(status, headers)`` makes the next requests fail with an HTTP status
    (429 with Retry-After, 500, ...); ``requests`` records the headers and arrival times.
    """

    def __init__(self, key: Optional[str] = None) -> None:
        self.key = key
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
        """Every body received, decompressed, as text."""
        with self.lock:
            return "\n".join(body.decode("utf-8", "replace") for body in self.bodies)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def report_sink() -> Iterator[RpcSink]:
    """Where end-to-end tests send reports (to become the real flawless server)."""
    sink = RpcSink(key="test-ingest-key")
    yield sink
    sink.stop()


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


@pytest.fixture
def use_client():
    """``use_client(hostports, key=None, **settings)`` installs a client (no hooks) and
    removes it after the test."""
    def install(hostports, key=None, **settings):
        return flawless.client.install(hostports=hostports, key=key, excepthook=False,
                                       threads=False, **settings)
    yield install
    flawless.client.uninstall()
