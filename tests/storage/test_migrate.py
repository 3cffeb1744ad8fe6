"""``flawless migrate``: a server's SQLite data copied into PostgreSQL, as an operator moves
a single server to several: run the old server, stop it, migrate, start on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

from support.gitrepo import average_report
from support.server import FlawlessProcess, server_options, start_server, write_config

TABLES = ("errors", "error_weeks", "error_days", "outbox", "inbox", "stats")


def migrate(config, source):
    return subprocess.run([sys.executable, "-m", "flawless", "migrate", "-conf", str(config),
                           "--from", source], capture_output=True, text=True, timeout=120)


def rows(server, table):
    return sorted(server.query(f"SELECT * FROM {table}"), key=repr)


def test_a_servers_data_moves_to_postgresql_whole(tmp_path, shop, smtp_sink, postgres_url):
    old = start_server(tmp_path / "old", repo_dir=shop.path, smtp_hostport=smtp_sink.hostport,
                       report_error_threshold=2)
    for report in (average_report(), average_report(), average_report("shop/cart.py")):
        assert old.record(report)["result"] == {"accepted": True}
    assert old.wait_until(lambda: old.inbox_depth() == 0 and old.query(
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == [(0,)])
    old.stop()
    before = {table: rows(old, table) for table in TABLES}
    assert before["errors"] and before["outbox"]

    config = write_config(tmp_path / "new", server_options(
        tmp_path / "new" / "data", repo_dir=shop.path, smtp_hostport=smtp_sink.hostport,
        report_error_threshold=2, storage="postgresql", database_url=postgres_url))
    done = migrate(config, f"sqlite:{old.data_dir / 'flawless.sqlite3'}")
    assert done.returncode == 0, done.stderr
    assert f"errors: {len(before['errors'])} rows" in done.stdout

    new = FlawlessProcess(config, tmp_path / "new" / "data").start()
    try:
        for table in TABLES:
            assert rows(new, table) == before[table], table
        # It carries on where the old server stopped: counts grow, ids follow on.
        assert new.record(average_report())["result"] == {"accepted": True}
        assert new.wait_until(lambda: new.inbox_depth() == 0)
        assert dict(new.query("SELECT function_name, count FROM errors")) == {"average": 4}
        assert len(smtp_sink.messages) == 1   # alerted once, before the move
        again = migrate(config, f"sqlite:{old.data_dir / 'flawless.sqlite3'}")
        assert again.returncode == 1 and "already holds" in again.stderr
        assert "nothing copied" in again.stderr
    finally:
        new.stop()


def test_migrate_says_what_is_wrong(tmp_path, postgres_url):
    sqlite_config = write_config(tmp_path / "a", {"data_dir_path": "data"})
    done = migrate(sqlite_config, f"sqlite:{tmp_path / 'flawless.sqlite3'}")
    assert done.returncode == 1 and "storage = postgresql" in done.stderr
    config = write_config(tmp_path / "b", {"storage": "postgresql",
                                           "database_url": postgres_url})
    done = migrate(config, f"sqlite:{tmp_path / 'absent.sqlite3'}")
    assert done.returncode == 1 and "no such file" in done.stderr
    assert not (tmp_path / "absent.sqlite3").exists()
    done = migrate(config, str(tmp_path / "flawless.sqlite3"))
    assert done.returncode == 2 and "must be sqlite:PATH" in done.stderr
