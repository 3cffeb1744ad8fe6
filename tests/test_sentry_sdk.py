"""The real sentry-sdk (Python), pointed at a real flawless server by its DSN, reports an
uncaught error of a committed module: its author gets one mail, and no planted secret reaches
the mail or the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.gitrepo import ALICE, CAROL, init_repo
from support.server import start_server

sentry_sdk = pytest.importorskip("sentry_sdk")

KEY = "public-key-7f3a"
TOKEN_CANARY = "CANARY-TOKEN-51c2e9"
CARD_CANARY = "4111 1111 1111 1111"

BILLING = '''\
def average_price(prices, api_token, note):
    total = sum(prices)
    return total / len(prices)
'''

MAIN = '''\
import os

from shop.billing import average_price


def nightly_report():
    return average_price([], os.environ["BILLING_TOKEN"], "paid with " + os.environ["CARD"])
'''

PROGRAM = '''\
import sys
import sentry_sdk

sentry_sdk.init(dsn=sys.argv[1], release=sys.argv[2], server_name="batch-1",
                include_local_variables=True)

from shop.main import nightly_report

nightly_report()
'''


@pytest.fixture
def world(tmp_path, smtp_sink):
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"shop/__init__.py": "", "shop/main.py": MAIN}, "Nightly report")
    repo.commit(CAROL, {"shop/billing.py": BILLING}, "Average price")
    server = start_server(tmp_path / "server", repo_dir=repo.path,
                          smtp_hostport=smtp_sink.hostport, ingest_keys=KEY)
    yield repo, server, smtp_sink
    server.stop()


def run_program(tmp_path: Path, repo_path: Path, dsn: str, release: str) -> None:
    # The program runs from a deployed copy, as in production, with the secrets of its run.
    deployed = tmp_path / "srv" / "app"
    deployed.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(repo_path / "shop"), str(deployed)], check=True)
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    done = subprocess.run([sys.executable, str(program), dsn, release], cwd=deployed,
                          env={**os.environ, "PYTHONPATH": str(deployed),
                               "BILLING_TOKEN": TOKEN_CANARY, "CARD": CARD_CANARY},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ZeroDivisionError" in done.stderr, done.stderr


def test_an_uncaught_error_is_mailed_once_to_the_author_of_its_line_scrubbed(tmp_path, world):
    repo, server, sink = world
    dsn = f"http://{KEY}@127.0.0.1:{server.port}/1"
    run_program(tmp_path, repo.path, dsn, repo.head())
    [(recipients, message)] = sink.wait_for(1)
    assert recipients == ["carol@example.net"]
    text = message.get_body(("plain",)).get_content()
    assert "ZeroDivisionError" in text and "shop/billing.py" in text
    assert "return total / len(prices)" in text and "Average price" in text
    assert "api_token = <scrubbed>" in text
    assert TOKEN_CANARY not in message.as_string() and CARD_CANARY not in message.as_string()
    assert server.wait_until(lambda: server.inbox_depth() == 0)
    database = b"".join(path.read_bytes() for path in server.data_dir.glob("flawless.sqlite3*"))
    assert TOKEN_CANARY.encode() not in database and CARD_CANARY.encode() not in database
    assert server.query("SELECT count, author_email, blame_at_requested FROM errors") == [
        (1, "carol@example.net", 1)]
    assert len(sink.wait_for(2, timeout=2)) == 1  # once


def test_a_dsn_with_an_unknown_key_is_refused(tmp_path, world):
    repo, server, sink = world
    dsn = f"http://wrong-key@127.0.0.1:{server.port}/1"
    run_program(tmp_path, repo.path, dsn, repo.head())
    assert server.query("SELECT COUNT(*) FROM inbox") == [(0,)]
    assert server.query("SELECT COUNT(*) FROM errors") == [(0,)]
    assert "401" in server.log() or sink.messages == []
