"""Exhaustion, against the real server: bodies without credentials, slow clients, more
sockets than the process has descriptors. Each time both ports keep answering legitimate
clients, nothing is buffered for strangers, and the rule files stay in force."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from typing import Iterator

from support.server import FlawlessProcess, server_options, start_server, write_config

from .common import get_page, post_from, record_body, report

KEY = "k3y-for-tests"


def open_socket(port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                          source_address=(source, 0))
    return connection


def read_answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes (or the socket's timeout passes)."""
    received = b""
    with contextlib.suppress(OSError):
        while True:
            data = connection.recv(65536)
            if not data:
                break
            received += data
    return received


def resident_kib(server: FlawlessProcess) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def accepted(server: FlawlessProcess, source: str = "127.0.0.1") -> bool:
    status, _, body = post_from(server, record_body([report()]), source,
                                {"Authorization": f"Bearer {KEY}"})
    return status == 200 and b'"accepted": true' in body


def dashboard_answers(server: FlawlessProcess) -> bool:
    return get_page(server.web_url + "/check_health", timeout=10)[0] == 200


def test_bodies_without_the_key_are_refused_before_they_are_read(tmp_path):
    server = start_server(tmp_path, ingest_keys=KEY)
    sockets = []
    try:
        before = resident_kib(server)
        head = (b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1048000\r\n\r\n")
        for number in range(150):
            connection = open_socket(server.port, f"127.0.5.{number % 50 + 1}")
            connection.sendall(head + b"[" + b" " * 60000)
            sockets.append(connection)
        answers = [read_answer(connection) for connection in sockets]
        # Each is answered at once, though 988 kB of its body were never sent ...
        assert all(answer.startswith(b"HTTP/1.1 401 ") for answer in answers), answers[:3]
        # ... so the server holds none of them (150 buffered bodies would be 150 MB).
        assert resident_kib(server) - before < 30_000
        assert accepted(server) and dashboard_answers(server)
    finally:
        for connection in sockets:
            connection.close()
        server.stop()


def test_slow_headers_and_endless_bodies_are_cut_while_others_are_served(tmp_path):
    server = start_server(tmp_path, ingest_keys=KEY, header_timeout_seconds=1,
                          body_timeout_seconds=2)
    slow, endless = [], []
    try:
        for number in range(30):
            connection = open_socket(server.port, f"127.0.1.{number + 1}")
            connection.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
            connection = open_socket(server.port, f"127.0.2.{number + 1}")
            connection.sendall(f"POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}"
                               "\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            endless.append(connection)
        web = open_socket(server.http_port)
        web.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        cut: set[int] = set()
        deadline = time.monotonic() + 30
        while len(cut) < len(slow) + len(endless) + 1 and time.monotonic() < deadline:
            for index, connection in enumerate(slow + endless + [web]):
                if index in cut:
                    continue
                with contextlib.suppress(OSError):
                    # a byte at a time, a chunk at a time: never idle, never done
                    connection.sendall(b"X" if connection in slow or connection is web
                                       else b"1\r\na\r\n")
                    continue
                cut.add(index)
            assert accepted(server, "127.0.3.1") and dashboard_answers(server)
            time.sleep(0.2)
        assert len(cut) == len(slow) + len(endless) + 1, "some slow clients were never cut"
        assert read_answer(endless[0]).startswith(b"HTTP/1.1 408 ")
        health = json.loads(get_page(server.web_url + "/check_health")[1])
        assert health["connections"]["report_port"]["timed_out"] >= 60
    finally:
        for connection in slow + endless:
            connection.close()
        server.stop()


@contextlib.contextmanager
def idle_sockets(port: int, count: int, sources: list[str]) -> Iterator[list[socket.socket]]:
    """``count`` connections that say nothing, from each of ``sources`` in turn."""
    held = []
    try:
        for number in range(count):
            with contextlib.suppress(OSError):
                held.append(open_socket(port, sources[number % len(sources)], timeout=5))
        yield held
    finally:
        for connection in held:
            connection.close()


def test_more_sockets_than_descriptors_leave_both_ports_answering(tmp_path):
    """600 idle sockets on each port against a limit of 512 descriptors (1,100 against the
    common 1,024 took both ports down, and the rule files with them)."""
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, server_options(data_dir, ingest_keys=KEY,
                                                   header_timeout_seconds=60))
    server = FlawlessProcess(config, data_dir, command=[
        "prlimit", "--nofile=512:512", sys.executable, "-m", "flawless"]).start()
    try:
        assert "open files: at most 512" in server.log()
        # Past the cap per address (64) from one address, past the total that fits in the
        # descriptors (128 a port here) from ten others.
        one = ["127.0.10.1"]
        many = [f"127.0.{number}.1" for number in range(11, 21)]
        with idle_sockets(server.port, 100, one), idle_sockets(server.http_port, 100, one), \
                idle_sockets(server.port, 500, many), idle_sockets(server.http_port, 500, many):
            time.sleep(2.5)   # more than a rule-file poll
            assert accepted(server, "127.0.99.1") and dashboard_answers(server)
            health = json.loads(get_page(server.web_url + "/check_health")[1])
            assert health["rule_files"]["status"] == "ok", health["rule_files"]
            for port in ("report_port", "dashboard"):
                counts = health["connections"][port]
                assert counts["refused"] > 0 and counts["evicted"] > 0, counts
        assert accepted(server) and dashboard_answers(server)
        assert "Too many open files" not in server.log()
    finally:
        server.stop()


def test_the_soft_open_file_limit_is_raised_as_far_as_the_caps_need(tmp_path):
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, server_options(data_dir, max_connections=1000))
    server = FlawlessProcess(config, data_dir, command=[
        "prlimit", "--nofile=512:8192", sys.executable, "-m", "flawless"]).start()
    try:
        assert server.process is not None
        with open(f"/proc/{server.process.pid}/limits") as limits:
            line = next(line for line in limits if line.startswith("Max open files"))
        assert line.split()[3:5] == ["2256", "8192"]
        assert "open files: at most 2256 (raised from 512; hard limit 8192)" in server.log()
        assert "does not fit" not in server.log()
    finally:
        server.stop()
