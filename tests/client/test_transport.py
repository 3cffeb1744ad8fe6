"""The sender: failover, backoff, 429, gzip batches, fork safety, and never blocking."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import flawless.client
from flawless.client.decorators import wrap_function
from flawless.backoff import backoff_delay
from flawless.client.transport import (TransportOptions, parse_hostport,
                                       retry_after_seconds)

FAST = TransportOptions(connect_timeout=0.5, read_timeout=0.5, first_backoff=0.05,
                        max_backoff=0.2)


def raise_distinct(count, prefix="error"):
    """Raise ``count`` errors from distinct lines of code (so none is aggregated)."""
    namespace = {}
    source = "\n".join(f"def f{i}():\n    raise ValueError('{prefix} {i}')" for i in range(count))
    exec(compile(source, f"/srv/app/{prefix}.py", "exec"), namespace)
    for i in range(count):
        wrap_function(namespace[f"f{i}"], reraise_exception=False)()


def test_hostports_and_retry_after_parsing():
    assert parse_hostport("flawless.example.com:9028").port == 9028
    assert parse_hostport("https://f.example.com:443/rpc").tls
    with pytest.raises(ValueError):
        parse_hostport("no-port")
    assert retry_after_seconds("7", 1.0) == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1.0) == 0.0
    assert retry_after_seconds("garbage", 1.5) == 1.5
    delays = [backoff_delay(n, 0.5, 60) for n in (1, 2, 3, 10)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0 and delays[3] <= 60


def test_fail_over_to_the_next_hostport(down, rpc_sink, use_client):
    use_client([down, rpc_sink.hostport], transport=FAST)
    raise_distinct(3)
    assert flawless.client.flush(5)
    assert len(rpc_sink.wait_for_reports(3)) == 3
    assert flawless.client.stats()["failed_attempts"] >= 1


def test_server_errors_fail_over_too(rpc_sink, report_sink, use_client):
    rpc_sink.answer_next(503, times=100)
    use_client([rpc_sink.hostport, report_sink.hostport], key=report_sink.key, transport=FAST)
    raise_distinct(2)
    assert flawless.client.flush(5)
    assert len(report_sink.wait_for_reports(2)) == 2


def test_retry_after_of_a_429_is_honoured(rpc_sink, use_client):
    rpc_sink.answer_next(429, {"Retry-After": "1"})
    use_client([rpc_sink.hostport], transport=FAST)
    raise_distinct(1)
    assert flawless.client.flush(5)
    assert len(rpc_sink.wait_for_reports(1)) == 1
    first, second = rpc_sink.requests[:2]
    assert second["time"] - first["time"] >= 0.95


def test_all_servers_down_backs_off_then_delivers(down, rpc_sink, use_client):
    rpc_sink.answer_next(500, times=3)
    use_client([rpc_sink.hostport], transport=FAST)
    raise_distinct(1)
    assert len(rpc_sink.wait_for_reports(1, timeout=5)) == 1
    times = [request["time"] for request in rpc_sink.requests]
    assert len(times) == 4 and all(b > a for a, b in zip(times, times[1:]))


def test_large_batches_are_gzipped_and_small_ones_are_not(rpc_sink, use_client):
    use_client([rpc_sink.hostport],
               transport=TransportOptions(batch_size=100, gzip_min_bytes=32 * 1024))
    raise_distinct(1, "small")
    assert flawless.client.flush(5)
    raise_distinct(60, "large")
    assert flawless.client.flush(5)
    assert len(rpc_sink.wait_for_reports(61)) == 61
    encodings = [request["headers"].get("Content-Encoding") for request in rpc_sink.requests]
    assert encodings[0] is None and "gzip" in encodings[1:]
    assert len(rpc_sink.requests) < 61  # batched


def test_a_full_queue_drops_and_counts(blackhole, use_client):
    use_client([blackhole], transport=TransportOptions(queue_size=5, read_timeout=5))
    raise_distinct(50)
    stats = flawless.client.stats()
    assert stats["dropped_queue_full"] >= 40
    assert stats["submitted"] + stats["dropped_queue_full"] == 50


def test_a_refused_key_drops_and_counts(report_sink, use_client):
    use_client([report_sink.hostport], key="wrong-key")
    raise_distinct(2)
    assert flawless.client.flush(5)
    assert flawless.client.stats()["rejected"] == 2
    assert report_sink.wait_for_reports(1, timeout=0.2) == []


def test_nothing_is_sent_when_nothing_is_configured(monkeypatch):
    monkeypatch.delenv("FLAWLESS_HOSTPORTS", raising=False)
    flawless.client.uninstall()
    try:
        raise_distinct(2)
        assert flawless.client.stats()["dropped_unconfigured"] == 2
        assert flawless.client.stats()["submitted"] == 0
    finally:
        flawless.client.uninstall()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_reports_on_its_own(report_sink, use_client):
    use_client([report_sink.hostport], key=report_sink.key)
    raise_distinct(1, "parent-before")
    assert flawless.client.flush(5)
    pid = os.fork()
    if pid == 0:
        try:
            raise_distinct(1, "parent-before")  # same error: the child counts from zero
            raise_distinct(1, "child")
            os._exit(0 if flawless.client.flush(5) else 1)
        finally:
            os._exit(2)
    raise_distinct(1, "parent-after")
    assert flawless.client.flush(5)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reports = report_sink.wait_for_reports(4)
    messages = sorted(report["exception_message"] for report in reports)
    assert messages == ["child 0", "parent-after 0", "parent-before 0", "parent-before 0"]


NEVER_BLOCK = textwrap.dedent('''
    import sys, time
    import flawless.client
    from flawless.client.decorators import wrap_function
    flawless.client.install(hostports=[sys.argv[1]], flush_timeout=1.0)

    @wrap_function(reraise_exception=False)
    def charge(order):
        raise ValueError("payment backend said no")

    namespace = {}
    exec(compile("\\n".join(f"def f{i}():\\n    raise KeyError({i})" for i in range(50)),
                 "/srv/app/many.py", "exec"), namespace)
    started = time.perf_counter()
    for order in range(1000):
        charge(order)
    for i in range(50):
        wrap_function(namespace[f"f{i}"], reraise_exception=False)()
    print(time.perf_counter() - started, flush=True)
''')


@pytest.mark.parametrize("target", ["blackhole", "down"])
def test_a_dead_or_silent_server_neither_slows_the_program_nor_its_exit(target, request):
    hostport = request.getfixturevalue(target)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", NEVER_BLOCK, hostport], capture_output=True,
                            text=True, timeout=30)
    total = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    raising = float(result.stdout)
    assert raising < 0.5  # 1,050 wrapped errors, without waiting on the network
    assert total < 1.0 + raising + 1.5  # the flush bound, plus start-up


class KeepAliveSink:
    """An HTTP/1.1 JSON-RPC sink that keeps connections open and counts them."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        sink = self
        self.connections: set = set()
        self.reports = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip
                    body = gzip.decompress(body)
                calls = json.loads(body)
                calls = calls if isinstance(calls, list) else [calls]
                sink.connections.add(self.client_address)
                sink.reports += len(calls)
                answer = json.dumps([{"jsonrpc": "2.0", "id": call.get("id"),
                                      "result": {"accepted": True}} for call in calls]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.hostport = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_one_kept_open_connection_carries_many_requests(use_client):
    sink = KeepAliveSink()
    try:
        use_client([sink.hostport], transport=TransportOptions(batch_size=1))
        raise_distinct(20, prefix="kept")
        assert flawless.client.flush(10)
        assert sink.reports == 20 and len(sink.connections) == 1
    finally:
        sink.server.shutdown()
