"""Real apps under real servers against the real flawless server, as users run them: Flask
and Django under gunicorn, FastAPI under uvicorn, and any program under ``flawless run``.

One flawless server (with a real SMTP server and a three-author repository) serves the
whole module. For each framework: an unhandled error is one report with its request,
mailed to the author of the line; a 404 is none; a handled error passed to record_error is
one; canaries planted in headers, cookies, query, form and JSON bodies are nowhere in the
database or the mail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.gitrepo import ALICE, BOB, CAROL, GitRepo
from support.server import start_server
from support.smtp import SmtpSink
from support.webapps import AppServer, webshop_repo

KEY = "shop-ingest-key"
CANARIES = {"header": "hdr-canary-5e1", "authorization": "auth-canary-77a",
            "cookie": "cookie-canary-9d2", "query": "query-canary-c40",
            "query_email": "query.canary@example.com", "form": "form-canary-a13",
            "json": "json-canary-f08"}


@pytest.fixture(scope="module")
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def webshop(tmp_path_factory) -> GitRepo:
    return webshop_repo(tmp_path_factory.mktemp("webshop") / "repo")


@pytest.fixture(scope="module")
def flawless_server(tmp_path_factory, webshop, smtp):
    server = start_server(tmp_path_factory.mktemp("flawless"), repo_dir=webshop.path,
                          smtp_hostport=smtp.hostport, ingest_keys=KEY,
                          rate_limit_per_address=0, rate_limit_per_key=0)
    yield server
    server.stop()


def client_environment(server) -> dict[str, str]:
    return {"FLAWLESS_HOSTPORTS": server.hostport, "FLAWLESS_KEY": KEY,
            "SHOP_FLAWLESS_HOSTPORT": server.hostport, "SHOP_FLAWLESS_KEY": KEY}


def request(port: int, method: str, path: str, body: bytes = b"",
            headers: dict = None) -> int:
    call = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body or None,
                                  method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def planted_headers(content_type: str) -> dict:
    return {"Content-Type": content_type, "User-Agent": "shop-test/1.0",
            "X-Shop-Note": CANARIES["header"],
            "Authorization": f"Bearer {CANARIES['authorization']}",
            "Cookie": f"sessionid={CANARIES['cookie']}; theme=dark"}


def errors_of(server, module: str) -> dict[str, tuple]:
    """function name -> (count, report, author) of the errors blamed in ``module``'s file
    or in pricing for it."""
    rows = server.query("SELECT function_name, count, last_report, author_email FROM errors")
    return {name: (count, json.loads(report), author) for name, count, report, author in rows
            if module in report}


@pytest.mark.parametrize("framework, module, priced_by, author", [
    ("flask", "flask_app", "unit_price", ALICE[1]),
    ("django", "django_app", "discount", BOB[1]),
    ("fastapi", "asgi_app", "shipping", CAROL[1]),
])
def test_a_web_app_reports_its_errors_once_with_the_request_and_nothing_private(
        tmp_path, webshop, flawless_server, smtp, framework, module, priced_by, author):
    app = AppServer(framework, webshop.path, tmp_path / "app.log",
                    client_environment(flawless_server)).start()
    try:
        query = f"?coupon={CANARIES['query']}&email={CANARIES['query_email']}"
        assert request(app.port, "GET", "/missing" + query, headers=planted_headers(
            "text/plain")) == 404
        assert request(app.port, "POST", "/reserve" + query,
                       json.dumps({"count": 3, "note": CANARIES["json"]}).encode(),
                       planted_headers("application/json")) == 409
        assert request(app.port, "POST", "/order/7" + query,
                       f"qty=0&note={CANARIES['form']}".encode(),
                       planted_headers("application/x-www-form-urlencoded")) == 500
        assert flawless_server.wait_until(
            lambda: {priced_by, "reserve_items"} <= set(errors_of(flawless_server, module)),
            30), (errors_of(flawless_server, module), app.log())
    finally:
        app.stop()
    assert flawless_server.wait_until(lambda: flawless_server.inbox_depth() == 0)
    errors = errors_of(flawless_server, module)
    assert set(errors) == {priced_by, "reserve_items"}  # the 404 is not an error
    count, report, blamed = errors[priced_by]
    assert count == 1 and blamed == author
    assert report["exception_type"] == "builtins.ZeroDivisionError"
    assert report["request"]["method"] == "POST"
    assert report["request"]["url"] == f"http://127.0.0.1:{app.port}/order/7?coupon&email"
    assert report["request"]["route"] in ("/order/<int:shop>", "order/<int:shop>",
                                          "/order/{shop}")
    assert report["request"]["headers"]["User-Agent"] == "shop-test/1.0"
    assert report["tags"] == {"shop": "7"}
    assert report["revision"] == webshop.head()
    assert errors["reserve_items"][0] == 1  # handled, recorded once, logged too
    mails = smtp.wait_for(1, where=lambda recipients, message: recipients == [author]
                          and priced_by in message.get_body(("plain",)).get_content())
    assert mails, [recipients for recipients, _ in smtp.messages]
    everything = "\n".join([*flawless_server.db().iterdump(),
                            *(message.as_string() for _, message in smtp.messages)])
    assert [name for name, canary in CANARIES.items() if canary in everything] == []


# -- flawless run ---------------------------------------------------------------------------

SCRIPT = '''\
import sys
import threading

from jobs.nightly import settle


def in_thread():
    settle([], "thread")


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "thread":
        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
        sys.exit(0)
    if kind == "exit":
        sys.exit(3)
    settle([], kind)
'''
NIGHTLY = '''\
def settle(invoices, who):
    return sum(invoices) / len(invoices)
'''
PACKAGE_MAIN = '''\
from jobs.nightly import settle

settle([], "module")
'''


@pytest.fixture(scope="module")
def jobs_repo(webshop) -> GitRepo:
    """The nightly job, by Bob, in the repository the server blames."""
    webshop.commit(BOB, {"jobs/__init__.py": "", "jobs/nightly.py": NIGHTLY,
                         "jobs/__main__.py": PACKAGE_MAIN, "run_job.py": SCRIPT}, "Nightly job",
                   date="2026-11-05T10:00:00+00:00")
    return webshop


def flawless_run(server, repo: GitRepo, *command: str) -> subprocess.CompletedProcess:
    config = Path(server.config_path)
    return subprocess.run([sys.executable, "-m", "flawless", "run", "-conf", str(config), "--",
                           *command], cwd=repo.path, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo.path)})


def settle_errors(server) -> dict[str, int]:
    rows = server.query("SELECT last_report, count FROM errors WHERE function_name = 'settle'")
    return {json.loads(report).get("additional_info") or "main": count
            for report, count in rows} if rows else {}


def test_flawless_run_keeps_the_exit_status_and_reports_scripts_modules_and_threads(
        flawless_server, jobs_repo, smtp):
    python = sys.executable
    script = flawless_run(flawless_server, jobs_repo, python, "run_job.py", "script")
    assert script.returncode == 1 and "ZeroDivisionError" in script.stderr
    assert flawless_run(flawless_server, jobs_repo, python, "run_job.py", "exit").returncode == 3
    thread = flawless_run(flawless_server, jobs_repo, python, "run_job.py", "thread")
    assert thread.returncode == 0 and "ZeroDivisionError" in thread.stderr
    module = flawless_run(flawless_server, jobs_repo, python, "-m", "jobs")
    assert module.returncode == 1
    assert flawless_server.wait_until(lambda: sum(settle_errors(flawless_server).values()) == 3)
    rows = flawless_server.query(
        "SELECT count, author_email, last_report FROM errors WHERE function_name = 'settle'")
    assert [(count, author) for count, author, _ in rows] == [(3, BOB[1])]
    frames = {frame["function_name"] for report in (json.loads(rows[0][2]),)
              for frame in report["traceback"]}
    assert "settle" in frames
    assert smtp.wait_for(1, where=lambda recipients, message: recipients == [BOB[1]]
                         and "settle" in message.get_body(("plain",)).get_content())


def test_flawless_run_without_a_command_or_with_a_missing_one():
    assert subprocess.run([sys.executable, "-m", "flawless", "run"],
                          capture_output=True).returncode == 2
    missing = subprocess.run([sys.executable, "-m", "flawless", "run", "--", "no-such-cmd-x"],
                             capture_output=True, text=True)
    assert missing.returncode == 127 and "no-such-cmd-x: command not found" in missing.stderr


def test_a_sitecustomize_hidden_by_flawless_run_still_runs(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITE_RAN'] = 'yes'\n")
    result = subprocess.run(
        [sys.executable, "-m", "flawless", "run", "--", sys.executable, "-c",
         "import os, sys; print(os.environ.get('SITE_RAN'), sys.excepthook.__module__)"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)})
    assert result.stdout.split() == ["yes", "flawless.client.hooks"], result.stderr
