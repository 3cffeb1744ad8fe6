"""Abuse: rate limits per key and per client address answer 429 with Retry-After, a flood
from one key does not starve another, and floods keep memory and disk bounded."""

from __future__ import annotations

import threading
import time

import pytest

from support.server import FlawlessProcess, start_server

from .common import post_from, record_body, report, sqlite_path, stored_total


def accepted(answer: tuple[int, dict, bytes]) -> bool:
    return answer[0] == 200 and b'"accepted": true' in answer[2]


def flood_until_refused(server, source: str = "127.0.0.1", headers=None, limit: int = 500):
    """Send batches of ten until one is refused; return the refusal."""
    for _ in range(limit):
        answer = post_from(server, record_body([report()] * 10), source, headers)
        if answer[0] != 200:
            return answer
    pytest.fail("never rate limited")


def assert_429_with_retry_after(answer) -> int:
    status, headers, _ = answer
    assert status == 429
    retry_after = {name.lower(): value for name, value in headers.items()}["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return int(retry_after)


@pytest.fixture
def keyed(tmp_path):
    server = start_server(tmp_path, ingest_keys="key-a,key-b", rate_limit_per_key=40,
                          rate_limit_per_address=0, rate_limit_burst_seconds=1)
    yield server
    server.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_per_key_limit_is_429_with_retry_after_and_spares_other_keys(keyed):
    assert_429_with_retry_after(flood_until_refused(keyed, headers=bearer("key-a")))
    assert accepted(post_from(keyed, record_body([report()]), headers=bearer("key-b")))


def test_a_flood_from_one_key_does_not_starve_another(keyed):
    stop = threading.Event()
    refused = []

    def flood() -> None:
        while not stop.is_set():
            answer = post_from(keyed, record_body([report()] * 20), headers=bearer("key-a"))
            if answer[0] == 429:
                refused.append(answer)

    flooders = [threading.Thread(target=flood) for _ in range(3)]
    for flooder in flooders:
        flooder.start()
    try:
        time.sleep(0.5)
        answers = []
        for _ in range(20):  # 10 a second: well within key-b's own rate
            answers.append(post_from(keyed, record_body([report()]), headers=bearer("key-b")))
            time.sleep(0.1)
    finally:
        stop.set()
        for flooder in flooders:
            flooder.join()
    assert refused, "the flood was never limited"
    assert all(accepted(answer) for answer in answers), [a[0] for a in answers]


def test_per_address_limit_is_429_and_spares_other_addresses(tmp_path):
    server = start_server(tmp_path, rate_limit_per_key=0, rate_limit_per_address=40,
                          rate_limit_burst_seconds=1)
    try:
        wait = assert_429_with_retry_after(flood_until_refused(server, "127.0.0.2"))
        assert accepted(post_from(server, record_body([report()]), "127.0.0.3"))
        time.sleep(wait)
        assert accepted(post_from(server, record_body([report()]), "127.0.0.2"))
    finally:
        server.stop()


def resident_kib(server: FlawlessProcess) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def disk_bytes(server: FlawlessProcess) -> int:
    return sum(path.stat().st_size for path in server.data_dir.glob("flawless.sqlite3*"))


def send_all(server: FlawlessProcess, reports: list[dict], batch: int = 100) -> None:
    for start in range(0, len(reports), batch):
        status, _, _ = server.post(record_body(reports[start:start + batch]))
        assert status == 200
    assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=120)


def test_floods_keep_memory_and_disk_bounded(tmp_path):
    # No alerts here: this is about what errors cost, not mail (see test_faults for mail).
    server = start_server(tmp_path, rate_limit_per_key=0, rate_limit_per_address=0,
                          report_error_threshold=10**6)
    big = "x" * 3000
    try:
        def distinct(first: int, count: int) -> list[dict]:
            return [report({"filename": f"/srv/app/gen/m{n}.py", "line_number": 1,
                            "function_name": f"f{n}", "text": big}, exception_message=big)
                    for n in range(first, first + count)]

        send_all(server, distinct(0, 1500))
        memory_after_first, disk_after_first = resident_kib(server), disk_bytes(server)
        send_all(server, distinct(1500, 1500))
        memory_after_second = resident_kib(server)
        # The same error again and again only counts: no disk per occurrence.
        send_all(server, [report(exception_message=big)] * 3000)
        assert stored_total(server) == 6000
        assert server.query("SELECT COUNT(*) FROM errors")[0][0] == 3001
        disk = disk_bytes(server)
        # Each distinct error costs a bounded row: its last report (two 3000-character
        # strings here) and the unique index on its 3000-character line text ...
        assert disk < 3001 * 25_000, disk
        # ... and repetitions cost nothing beyond: 3000 more occurrences, about the
        # disk of 1500 more distinct errors at most.
        assert disk < disk_after_first * 3, (disk_after_first, disk)
        # Memory does not grow with the number of distinct errors seen.
        assert memory_after_second - memory_after_first < 40_000, (
            memory_after_first, memory_after_second)
    finally:
        server.stop()


def test_retention_weeks_prunes_old_weeks_and_keeps_recent_ones(tmp_path):
    server = start_server(tmp_path, retention_weeks=4)
    assert server.record(report())["result"] == {"accepted": True}
    assert server.wait_until(lambda: stored_total(server) == 1)
    server.stop()
    old = time.time() - 30 * 7 * 86400
    with server.db() as connection:
        connection.execute(
            "INSERT INTO errors (filename, function_name, text, line_number, exception_type, "
            "blamed, count, first_seen, last_seen, last_report) "
            "SELECT 'old.py', 'old', '', 1, exception_type, 0, 9, ?, ?, last_report "
            "FROM errors", (old, old))
        old_id = connection.execute("SELECT id FROM errors WHERE filename = 'old.py'"
                                    ).fetchone()[0]
        connection.execute("INSERT INTO error_weeks VALUES (?, '2020-01-06', 9, ?, ?)",
                           (old_id, old, old))
    restarted = FlawlessProcess(server.config_path, server.data_dir).start()
    try:
        assert restarted.wait_until(lambda: restarted.query(
            "SELECT COUNT(*) FROM errors WHERE filename = 'old.py'") == [(0,)], timeout=20)
        assert restarted.query("SELECT COUNT(*) FROM error_weeks WHERE week_start < '2021'"
                               ) == [(0,)]
        assert stored_total(restarted) == 1
    finally:
        restarted.stop()
    assert sqlite_path(restarted).exists()
