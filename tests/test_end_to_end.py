"""End to end: `flawless start` as a subprocess, a real git repository with several authors,
a real SMTP server, and a second process raising exceptions in the repository's code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from support.gitrepo import ALICE, BOB, CAROL, GitRepo, average_report, init_repo, shop_repo
from support.server import FlawlessProcess, start_server

# Runs in a separate process: imports the shop code from the repository, raises there,
# and sends each exception as a report over plain HTTP.
RAISER = textwrap.dedent('''
    import json, sys, traceback, urllib.request
    repo, url, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.path.insert(0, repo)
    from shop.cart import Cart
    from shop.pricing import parse_price

    def bad_total():
        cart = Cart()
        cart.items.append(("pen", "not a number"))
        cart.total()

    def empty_average():
        Cart().average()

    def bad_price():
        parse_price("twelve")

    actions = {"bad_total": bad_total, "empty_average": empty_average, "bad_price": bad_price}
    answers = []
    for name, times in plan:
        for _ in range(times):
            try:
                actions[name]()
            except Exception as error:
                frames = traceback.extract_tb(error.__traceback__)
                report = {
                    "exception_type": type(error).__module__ + "." + type(error).__qualname__,
                    "exception_message": str(error),
                    "traceback": [{"filename": f.filename, "line_number": f.lineno,
                                   "function_name": f.name, "text": f.line or ""}
                                  for f in frames],
                    "hostname": "web-3",
                }
                body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "record_error",
                                   "params": {"report": report}}).encode()
                request = urllib.request.Request(url, body,
                                                 {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    answers.append(json.loads(response.read())["result"])
    print(json.dumps(answers))
''')


def raise_in_repo(repo: GitRepo, server: FlawlessProcess, plan: list) -> list:
    """Run the raiser process; return the server's answers."""
    result = subprocess.run([sys.executable, "-c", RAISER, str(repo.path), server.rpc_url,
                             json.dumps(plan)], capture_output=True, text=True, timeout=120,
                            check=True)
    return json.loads(result.stdout)


@pytest.fixture
def server(tmp_path, shop, smtp_sink, backend_options):
    """A server on each storage backend."""
    process = start_server(tmp_path / "server", repo_dir=shop.path,
                           smtp_hostport=smtp_sink.hostport, report_error_threshold=3,
                           **backend_options)
    yield process
    process.stop()


def test_each_email_reaches_the_author_of_the_culprit_line(server, shop, smtp_sink):
    answers = raise_in_repo(shop, server, [["bad_total", 3], ["empty_average", 4],
                                           ["bad_price", 2]])
    assert answers == [{"accepted": True}] * 9
    mails = smtp_sink.wait_for(2)
    time.sleep(1.0)  # anything more would be a bug: give it the chance to show
    mails = smtp_sink.messages
    by_recipient = {tuple(recipients): message for recipients, message in mails}
    assert set(by_recipient) == {("alice@example.com",), ("bob@example.org",)}
    alice = by_recipient[("alice@example.com",)]
    assert alice["Subject"] == "TypeError in total (shop/cart.py:11) on web-3"
    assert "TypeError" in alice.get_body(("plain",)).get_content()
    assert "return sum(price for _, price in self.items)" in \
        alice.get_body(("plain",)).get_content()
    bob = by_recipient[("bob@example.org",)]
    assert "ZeroDivisionError" in bob.get_body(("plain",)).get_content()
    assert "return self.total() / len(self.items)" in bob.get_body(("plain",)).get_content()
    assert bob["Message-ID"] and bob["Date"]
    # parse_price failed twice only: below the threshold of 3, so no mail for it.
    assert all("parse_price" not in message.get_body(("plain",)).get_content()
               for _, message in mails)
    counts = dict(server.query("SELECT function_name, count FROM errors"))
    assert counts == {"total": 3, "average": 4, "parse_price": 2}


def test_acknowledged_reports_survive_sigkill(tmp_path, shop, smtp_sink, backend_options):
    directory = tmp_path / "server"
    server = start_server(directory, repo_dir=shop.path, smtp_hostport=smtp_sink.hostport,
                          report_error_threshold=40, **backend_options)
    answers = raise_in_repo(shop, server, [["bad_total", 50], ["empty_average", 30]])
    server.kill()
    assert answers == [{"accepted": True}] * 80
    restarted = FlawlessProcess(server.config_path, server.data_dir).start()
    try:
        assert restarted.wait_until(lambda: restarted.inbox_depth() == 0)
        assert dict(restarted.query("SELECT function_name, count FROM errors")) == {
            "total": 50, "average": 30}
        mails = smtp_sink.wait_for(1)
        time.sleep(0.5)
        assert [recipients for recipients, _ in smtp_sink.messages] == [["alice@example.com"]]
        assert len(mails) == 1
    finally:
        restarted.stop()


def test_sigterm_stops_cleanly_and_keeps_every_report(server, shop):
    raise_in_repo(shop, server, [["bad_total", 5]])
    assert server.stop() == 0
    assert "flawless stopped" in server.log()
    total = server.query("SELECT COALESCE(SUM(count), 0) FROM errors")[0][0]
    assert total + server.inbox_depth() == 5


def test_unblamable_errors_go_to_the_default_contact(server, smtp_sink):
    report = {"exception_type": "builtins.KeyError", "exception_message": "'x'",
              "traceback": [{"filename": "/opt/elsewhere/tool.py", "line_number": 3,
                             "function_name": "run", "text": "d['x']"}],
              "error_count": 3}
    assert server.record(report)["result"] == {"accepted": True}
    mails = smtp_sink.wait_for(1)
    assert [recipients for recipients, _ in mails] == [["oncall@example.com"]]


def test_without_smtp_mail_goes_to_the_local_mailbox(tmp_path, shop, backend_options):
    import mailbox

    server = start_server(tmp_path / "server", repo_dir=shop.path, report_error_threshold=2,
                          **backend_options)
    try:
        raise_in_repo(shop, server, [["empty_average", 2]])
        path = server.data_dir / "mailbox"
        assert server.wait_until(lambda: path.exists() and len(mailbox.mbox(str(path))) == 1)
        message = mailbox.mbox(str(path))[0]
        assert message["To"] == "bob@example.org"
    finally:
        server.stop()


def test_a_missing_repository_keeps_reports_until_it_is_back(tmp_path, smtp_sink, backend_options):
    repo_path = tmp_path / "later-repo"
    server = start_server(tmp_path / "server", repo_dir=repo_path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=1,
                          **backend_options)
    try:
        assert server.record(average_report())["result"] == {"accepted": True}
        time.sleep(1.5)
        assert server.inbox_depth() == 1
        assert server.query("SELECT COUNT(*) FROM errors")[0][0] == 0
        shop_repo(repo_path)
        assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=40)
        mails = smtp_sink.wait_for(1)
        assert [recipients for recipients, _ in mails] == [["bob@example.org"]]
    finally:
        server.stop()


def test_a_corrupt_repository_keeps_reports(tmp_path, shop, smtp_sink, backend_options):
    head = shop.path / ".git" / "HEAD"
    good = head.read_text()
    head.write_text("garbage\n")
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=1,
                          **backend_options)
    try:
        assert server.record(average_report("shop/cart.py"))["result"] == {"accepted": True}
        time.sleep(1.5)
        assert server.inbox_depth() == 1
        head.write_text(good)
        assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=40)
        assert [r for r, _ in smtp_sink.wait_for(1)] == [["bob@example.org"]]
    finally:
        server.stop()


def test_frames_without_source_text_take_the_line_from_the_repository(server):
    for line_number in (6, 8):
        report = {"exception_type": "builtins.ValueError", "exception_message": "no source",
                  "traceback": [{"filename": "/srv/app/shop/cart.py", "line_number": line_number,
                                 "function_name": "add_item", "text": ""}]}
        assert server.record(report)["result"] == {"accepted": True}
    assert server.wait_until(lambda: server.inbox_depth() == 0 and len(server.query(
        "SELECT text FROM errors")) == 2)
    assert sorted(row[0] for row in server.query("SELECT text FROM errors")) == [
        "if price < 0:", "self.items.append((name, price))"]


def test_a_fix_commit_makes_old_deployments_quiet_and_a_regression_loud(tmp_path, shop,
                                                                        smtp_sink,
                                                                        backend_options):
    """Bob's Cart.average divides by zero; Carol's commit says it fixes that error (its
    link in a Fixes: trailer) but guards another caller. A report from before her commit is
    an old deployment; one from after it is a regression, mailed to Bob and to Carol."""
    before = shop.head()
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=1,
                          fixes_scan_interval_seconds=0.2, **backend_options)
    try:
        assert server.record(dict(average_report(), revision=before))["result"]
        [(recipients, first)] = smtp_sink.wait_for(1)
        assert recipients == ["bob@example.org"]
        link = next(line.split(" ", 1)[1] for line in
                    first.get_body(("plain",)).get_content().splitlines()
                    if line.startswith("Fixes: "))
        fix = shop.commit(CAROL, {"shop/report.py": "def daily(cart):\n"
                                  "    return cart.average() if cart.items else 0\n"},
                          f"Skip empty carts in the daily report\n\nFixes: {link}\n")
        assert server.wait_until(lambda: server.query(
            "SELECT fix_commit FROM error_resolutions WHERE resolved_at IS NOT NULL") == [
            (fix,)], timeout=30)
        for _ in range(2):
            assert server.record(dict(average_report(), revision=before))["result"]
        assert server.wait_until(lambda: server.query(
            "SELECT old_deployments FROM error_resolutions") == [(2,)], timeout=30)
        assert server.record(dict(average_report(), revision=fix))["result"]
        mails = smtp_sink.wait_for(3)
        time.sleep(0.5)  # a fourth mail would be a bug: give it the chance to show
        assert sorted(recipients for recipients, _ in smtp_sink.messages) == [
            ["bob@example.org"], ["bob@example.org"], ["carol@example.net"]]
        regression = mails[-1][1]
        assert regression["Subject"].startswith("Regression: ZeroDivisionError in average")
        assert f"regressed in {fix[:12]}" in regression.get_body(("plain",)).get_content()
        with urllib.request.urlopen(link, timeout=30) as answer:   # the error's page
            page = answer.read().decode()
        assert "regressed</span>" in page and f"<code>{fix[:12]}</code>" in page
    finally:
        server.stop()


CHAINS = textwrap.dedent('''
    import sys
    import flawless.client
    repo, hostport = sys.argv[1], sys.argv[2]
    sys.path.insert(0, repo)
    flawless.client.set_hostports([hostport])
    from app import config, handler, service
    for call in (lambda: config.load("twelve"), lambda: service.get("k"),
                 lambda: handler.total("k")):
        try:
            call()
        except Exception:
            flawless.client.record_error("web-7", sys.exc_info())
''')


def test_chained_exceptions_reach_the_author_of_the_line_where_they_began(tmp_path,
                                                                          smtp_sink,
                                                                          backend_options):
    """Real code raising 'raise ... from', an exception raised while handling another, and
    a handler failing in its own right, reported by the real client with its chain."""
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"app/__init__.py": "", "app/parse.py": "def parse(text):\n"
                        "    return int(text)\n",
                        "app/cache.py": "STORE = {}\n\n\ndef fetch(key):\n    return STORE[key]\n"},
                "Parsing and the cache")
    repo.commit(BOB, {
        "app/config.py": "from app.parse import parse\n\n\nclass ConfigError(Exception):\n"
                         "    pass\n\n\ndef load(text):\n    try:\n        return parse(text)\n"
                         "    except ValueError as err:\n"
                         "        raise ConfigError(text) from err\n",
        "app/service.py": "from app.cache import fetch\n\n\nclass LookupFailed(Exception):\n"
                          "    pass\n\n\ndef get(key):\n    try:\n        return fetch(key)\n"
                          "    except KeyError:\n        raise LookupFailed(key)\n"},
        "Wrap the errors of parsing and of the cache")
    repo.commit(CAROL, {"app/handler.py": "from app.cache import fetch\n\n\ndef total(key):\n"
                        "    try:\n        return fetch(key)\n    except KeyError:\n"
                        "        return 1 / 0\n"}, "Totals")
    server = start_server(tmp_path / "server", repo_dir=repo.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=1,
                          **backend_options)
    try:
        subprocess.run([sys.executable, "-c", CHAINS, str(repo.path), server.hostport],
                       check=True, timeout=60)
        mails = smtp_sink.wait_for(3)
        by_subject = {str(message["Subject"]): recipients for recipients, message in mails}
        assert by_subject == {
            "ConfigError in parse (app/parse.py:2) on web-7": ["alice@example.com"],
            "LookupFailed in fetch (app/cache.py:5) on web-7": ["alice@example.com"],
            "ZeroDivisionError in total (app/handler.py:8) on web-7": ["carol@example.net"]}
        config_mail = next(message for _, message in mails if "ConfigError" in
                           str(message["Subject"])).get_body(("plain",)).get_content()
        assert config_mail.index("ValueError: invalid literal") < \
            config_mail.rindex("app.config.ConfigError: twelve")
    finally:
        server.stop()
