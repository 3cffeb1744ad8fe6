"""Nothing lost under faults: SIGKILL under load, SMTP down, repository gone, disk full and
database locked. Every acknowledged occurrence is counted and every alert sent once."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from support.gitrepo import shop_repo
from support.server import FlawlessProcess, start_server
from support.smtp import SmtpSink

from .common import (BOB_LINE, alerts_by_function, assert_nothing_lost_or_doubled,
                     kill_repeatedly_under_load, record_body, report, stored_total)

THRESHOLD = 5
FUNCTIONS = [f"load_{index:02d}" for index in range(12)]


def test_sigkill_at_random_moments_loses_nothing_and_doubles_no_alert(tmp_path, shop, smtp_sink,
                                                                      soak, backend_options):
    rounds = 30 if soak else 3
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=THRESHOLD,
                          rate_limit_per_key=0, rate_limit_per_address=0, **backend_options)
    try:
        server, results = kill_repeatedly_under_load(server, rounds, 20261102, FUNCTIONS,
                                                     shop.head())
        assert_nothing_lost_or_doubled(server, results, smtp_sink, FUNCTIONS, THRESHOLD)
    finally:
        server.stop()


def test_smtp_down_then_back_delivers_every_alert_once(tmp_path, shop, backend_options):
    refusing = SmtpSink()
    refusing.refuse(True)
    refusing.start()
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=refusing.hostport, report_error_threshold=1,
                          **backend_options)
    back = SmtpSink(refusing.port)  # a fresh sink: aiosmtpd cannot restart a controller
    try:
        reports = [report(dict(BOB_LINE, function_name=name)) for name in FUNCTIONS[:4]]
        assert server.post(record_body(reports))[0] == 200
        # The four mails to Bob wait behind the first: one is tried, again and again.
        assert server.wait_until(lambda: server.query(
            "SELECT COUNT(*), MAX(attempts) FROM outbox WHERE attempts >= 1")[0][1] == 2,
            timeout=20)
        assert server.query("SELECT COUNT(*) FROM outbox WHERE attempts >= 1") == [(1,)]
        refusing.stop()  # answering "451 try later", then not even listening
        time.sleep(1.5)
        back.start()
        assert len(back.wait_for(4, timeout=60)) == 4
        time.sleep(1.0)
        alerts = alerts_by_function(back)
        assert {name: len(ids) for name, ids in alerts.items()} == dict.fromkeys(FUNCTIONS[:4], 1)
        assert refusing.messages == []
        # A delivered mail's body is not kept.
        assert server.query("SELECT COALESCE(SUM(LENGTH(message)), 0) FROM outbox "
                            "WHERE sent_at IS NOT NULL") == [(0,)]
    finally:
        server.stop()
        back.stop()


@pytest.mark.parametrize("fault", ["missing", "corrupt"])
def test_repository_lost_then_restored_keeps_reports_and_blames_them(tmp_path, smtp_sink, fault,
                                                                     backend_options):
    shop = shop_repo(tmp_path / "repo")
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=1,
                          **backend_options)
    head = shop.path / ".git" / "HEAD"
    good_head = head.read_text()
    try:
        assert server.record(report())["result"] == {"accepted": True}
        assert [r for r, _ in smtp_sink.wait_for(1)] == [["alice@example.com"]]
        if fault == "missing":
            shop.path.rename(tmp_path / "repo-away")
        else:
            head.write_text("garbage\n")
            shutil.move(str(shop.path / ".git" / "objects"), str(tmp_path / "objects-away"))
        assert server.record(report(BOB_LINE))["result"] == {"accepted": True}
        time.sleep(2.0)
        assert server.inbox_depth() == 1, "the report was not kept for a retry"
        if fault == "missing":
            (tmp_path / "repo-away").rename(shop.path)
        else:
            shutil.move(str(tmp_path / "objects-away"), str(shop.path / ".git" / "objects"))
            head.write_text(good_head)
        assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=60)
        mails = smtp_sink.wait_for(2)
        assert [r for r, _ in mails] == [["alice@example.com"], ["bob@example.org"]]
        assert server.query("SELECT author_email FROM errors WHERE function_name = 'average'"
                            ) == [("bob@example.org",)]
    finally:
        server.stop()


def assert_503_then_recovers(server: FlawlessProcess, release) -> None:  # type: ignore[no-untyped-def]
    """While the fault lasts a report gets 503 with Retry-After (never "accepted"); once
    ``release()`` ends it, reports are accepted again and everything accepted is counted."""
    before = stored_total(server) + server.inbox_depth()
    status, headers, body = server.post(record_body([report()]))
    assert status == 503, (status, body)
    assert {name.lower(): value for name, value in headers.items()}["retry-after"].isdigit()
    assert b"accepted" not in body.replace(b"nothing was accepted", b"")
    release()
    assert server.wait_until(lambda: server.post(record_body([report()]))[0] == 200,
                             timeout=30, interval=0.5)
    assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=30)
    assert stored_total(server) == before + 1
    assert server.process is not None and server.process.poll() is None


def test_database_locked_answers_503_and_recovers(tmp_path):
    server = start_server(tmp_path / "server")
    try:
        assert server.record(report())["result"] == {"accepted": True}
        assert server.wait_until(lambda: server.inbox_depth() == 0)
        locker = sqlite3.connect(str(server.data_dir / "flawless.sqlite3"), timeout=1,
                                 isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        assert_503_then_recovers(server, lambda: (locker.execute("ROLLBACK"), locker.close()))
    finally:
        server.stop()


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str) -> Iterator[Path]:
    """The server's data directory on a tmpfs of ``size`` (skips where mounting is not
    permitted)."""
    data = tmp_path / "server" / "data"
    data.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(data)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the data directory: {mounted.stderr}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def fill(path: Path) -> None:
    """Take every byte left on the disk of ``path``."""
    with open(path, "wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 4096):
                pass
        except OSError:
            pass


def test_disk_full_answers_503_and_recovers(tmp_path):
    with small_disk(tmp_path, "4m") as data:
        server = start_server(tmp_path / "server", min_free_disk_bytes=0)
        try:
            assert server.record(report())["result"] == {"accepted": True}
            assert server.wait_until(lambda: server.inbox_depth() == 0)
            fill(data / "filler")
            assert_503_then_recovers(server, (data / "filler").unlink)
        finally:
            server.stop()


def test_a_freed_disk_refilled_by_a_flood_strands_no_accepted_report(tmp_path):
    """Freed, the disk filled up again with the write-ahead log of a flood of new errors,
    and an accepted report stayed in the inbox for good. New reports are now refused while
    the database has less than min_free_disk_bytes of room, so every accepted one is
    processed."""
    with small_disk(tmp_path, "16m") as data:
        server = start_server(tmp_path / "server", rate_limit_per_key=0,
                              rate_limit_per_address=0, report_error_threshold=10**6,
                              min_free_disk_bytes=6 * 1024 * 1024)
        try:
            fill(data / "filler")
            assert server.post(record_body([report()]))[0] == 503
            (data / "filler").unlink()
            accepted, refused = 0, []
            for batch in range(200):
                reports = [report(dict(BOB_LINE, function_name=f"f{batch}_{n}"),
                                  exception_message="x" * 2000) for n in range(20)]
                status, headers, _ = server.post(record_body(reports))
                if status == 200:
                    accepted += len(reports)
                else:
                    refused.append((status, headers))
            assert accepted and refused
            assert all(status == 503 and "Retry-After" in headers for status, headers in refused)
            assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=60), \
                server.log()[-2000:]
            assert stored_total(server) == accepted
            health = json.loads(urllib.request.urlopen(
                server.web_url + "/check_health", timeout=10).read())
            assert health["inbox_depth"] == 0 and health["disk_free_bytes"] > 0
        finally:
            server.stop()
