"""The command line: usage errors, check, configure, and a daemon started and stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.gitrepo import ALICE, BOB, CAROL, average_report, init_repo
from support.server import server_options, start_server, write_config


def flawless(*args: str, stdin: str = "", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flawless", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_usage_errors_exit_2():
    assert flawless().returncode == 2
    assert flawless("start").returncode == 2
    assert flawless("fly").returncode == 2


def test_check_accepts_a_valid_config_with_either_spelling(tmp_path):
    config = write_config(tmp_path, server_options(tmp_path / "data"))
    for flag in ("-conf", "--conf"):
        result = flawless("check", flag, str(config))
        assert result.returncode == 0, result.stderr
        assert "valid" in result.stdout


def test_check_names_file_line_and_option_of_bad_values(tmp_path):
    config = tmp_path / "flawless.cfg"
    config.write_text("[flawless]\nport = 9028\nsmtp_use_tls = perhaps\n")
    result = flawless("check", "-conf", str(config))
    assert result.returncode == 1
    assert f"{config}:3: option smtp_use_tls: 'perhaps' is not a boolean" in result.stderr


def test_start_refuses_a_bad_config_with_the_reason(tmp_path):
    config = tmp_path / "flawless.cfg"
    config.write_text("[flawless]\nreport_error_threshold = 0\n")
    result = flawless("start", "-conf", str(config))
    assert result.returncode == 1
    assert "option report_error_threshold: 0 must be at least 1" in result.stderr


def test_configure_writes_a_config_and_the_rule_files(tmp_path, shop):
    target = tmp_path / "etc" / "flawless.cfg"
    answers = "\n".join([str(shop.path), "example.com", "oncall@example.com", "", "0", "0"])
    result = flawless("configure", "-conf", str(target), stdin=answers + "\n")
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert f"repo_dir = {shop.path}" in text and "email_domain_name = example.com" in text
    written = {path.name for path in target.parent.glob("*.yaml")}
    assert {"building_blocks.yaml", "known_errors.yaml", "third_party_whitelist.yaml",
            "ignored_exceptions.yaml", "watched_files.yaml", "email_remapping.yaml",
            "disownership.yaml"} <= written
    assert flawless("check", "-conf", str(target)).returncode == 0
    assert flawless("configure", "-conf", str(target)).returncode == 1  # never overwrites


def test_daemon_starts_writes_a_pid_file_and_stops(tmp_path):
    data = tmp_path / "data"
    config = write_config(tmp_path, server_options(data))
    started = flawless("start", "-conf", str(config), "--daemon")
    assert started.returncode == 0, started.stderr
    pid_file = data / "flawless.pid"
    deadline = time.monotonic() + 30
    while not (data / "listening.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    info = json.loads((data / "listening.json").read_text())
    pid = int(pid_file.read_text())
    assert info["pid"] == pid
    with urllib.request.urlopen(f"http://127.0.0.1:{info['http_port']}/check_health",
                                timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
    assert flawless("start", "-conf", str(config), "--daemon").returncode == 1  # already runs
    stopped = flawless("stop", "-conf", str(config))
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_file.exists()
    try:
        os.kill(pid, 0)
        alive = True
    except OSError:
        alive = False
    assert not alive
    assert flawless("stop", "-conf", str(config)).returncode == 1


def test_explain_prints_the_route_without_sending(tmp_path, shop):
    data = tmp_path / "data"
    config = write_config(tmp_path, server_options(data, repo_dir=shop.path))
    report = Path(tmp_path / "report.json")
    report.write_text(json.dumps(average_report()))
    result = flawless("check", "-conf", str(config), "--explain", str(report))
    assert result.returncode == 0, result.stderr
    assert "shop/cart.py" in result.stdout and "bob@example.org" in result.stdout
    assert not (data / "mailbox").exists()


def test_explain_says_how_a_moved_line_was_traced_and_what_a_fix_makes_of_a_report(tmp_path):
    repo = init_repo(tmp_path / "repo")
    repo.commit(ALICE, {"lib/helpers.py": "import os\n\n\ndef mean(values):\n"
                        "    total = sum(values)\n    return total / len(values)\n"}, "Helpers")
    before = repo.commit(CAROL, {"lib/helpers.py": "import os\n",
                                 "lib/stats.py": "def mean(values):\n    total = sum(values)\n"
                                 "    return total / len(values)\n"}, "Move mean to stats")
    link = ("http://flawless.example.com/view_traceback?filename=lib%2Fstats.py&function_name="
            "mean&line_number=3&text=return+total+%2F+len%28values%29")
    fix = repo.commit(BOB, {"lib/caller.py": "x = 1\n"}, f"Guard the caller\n\nFixes: {link}\n")
    config = write_config(tmp_path, server_options(tmp_path / "data", repo_dir=repo.path))

    def explain(revision: str) -> str:
        report = tmp_path / f"{revision}.json"
        report.write_text(json.dumps({
            "exception_type": "builtins.ZeroDivisionError", "exception_message": "x",
            "revision": revision, "traceback": [{
                "filename": "/srv/lib/stats.py", "line_number": 3, "function_name": "mean",
                "text": "return total / len(values)"}]}))
        result = flawless("check", "-conf", str(config), "--explain", str(report))
        assert result.returncode == 0, result.stderr
        return " ".join(result.stdout.split())

    old = explain(before)
    assert f"plain git blame names {before[:12]} by Carol Danvers (Move mean to stats)" in old
    assert "the line was written in lib/helpers.py" in old and "by Alice Liddell" in old
    assert f"fixed: the fix {fix[:12]} by Bob Builder (a Fixes: trailer in {fix[:12]})" in old
    assert f"no alert: old deployment: {before[:12]} does not contain the fix" in old
    regressed = explain(fix)
    assert f"alert: regression: regressed in {fix[:12]}" in regressed
    assert "to alice@example.com: last changed lib/stats.py:3" in regressed
    assert "to bob@example.org: wrote the fix" in regressed


def test_configure_checks_the_repository_and_asks_for_the_admin_password(tmp_path, shop):
    target = tmp_path / "etc" / "flawless.cfg"
    answers = [str(tmp_path / "no-such-dir"), str(tmp_path), str(shop.path), "example.com",
               "not an address", "oncall@example.com", "", "0", "0", "s3cret-admin"]
    result = flawless("configure", "-conf", str(target), stdin="\n".join(answers) + "\n")
    assert result.returncode == 0, result.stderr
    assert "is not a directory" in result.stdout and "is not a git repository" in result.stdout
    assert "is not an email address" in result.stdout
    text = target.read_text()
    assert f"repo_dir = {shop.path}" in text and "admin_password = s3cret-admin" in text
    assert target.stat().st_mode & 0o077 == 0  # it holds a password: its owner's alone


def occupied_port():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_busy_port_stops_a_start_at_once_with_the_reason(tmp_path):
    holder = occupied_port()
    port = holder.getsockname()[1]
    data = tmp_path / "data"
    config = write_config(tmp_path, server_options(data))
    try:
        for daemon in ((), ("--daemon",)):
            started = time.monotonic()
            result = flawless("start", "-conf", str(config), "--port", str(port), *daemon)
            assert result.returncode == 1, result.stderr
            assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
            assert "in use" in result.stderr
            assert time.monotonic() - started < 15
            assert not (data / "flawless.pid").exists()
        stray = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True)
        assert stray.stdout.strip() == ""  # no daemon left behind
    finally:
        holder.close()


def test_port_options_override_the_file_and_a_daemon_logs_in_its_data_directory(tmp_path):
    data = tmp_path / "data"
    config = write_config(tmp_path, server_options(data, port=1, http_port=1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = flawless("start", "-conf", str(config), "--daemon", "--port", str(port),
                       "--http-port", "0")
    try:
        assert started.returncode == 0, started.stderr
        info = json.loads((data / "listening.json").read_text())  # written before the answer
        assert info["port"] == port and info["http_port"] not in (0, 1)
        assert "rpc listening on port" in (data / "flawless.log").read_text()
        foreground = flawless("start", "-conf", str(config), "--port", "0", "--http-port", "0")
        assert foreground.returncode == 1 and "already runs" in foreground.stderr
    finally:
        assert flawless("stop", "-conf", str(config)).returncode == 0


def test_a_failing_daemon_says_why_and_leaves_no_process(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "flawless.sqlite3").write_text("this is not a database")
    config = write_config(tmp_path, server_options(data))
    result = flawless("start", "-conf", str(config), "--daemon")
    assert result.returncode == 1
    assert "the database" in result.stderr and "not a database" in result.stderr
    stray = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True)
    assert stray.stdout.strip() == ""


def test_health_is_degraded_while_the_repository_is_missing_and_reports_wait(tmp_path):
    server = start_server(tmp_path / "server", repo_dir=tmp_path / "gone",
                          max_backlog_seconds=1)
    try:
        server.record(average_report())
        with_reason = server.wait_until(lambda: health(server)["status"] == "degraded")
        status = health(server)
        assert with_reason and any("repository" in problem for problem in status["problems"])
        assert status["configuration"]["repo_dir"] == str(tmp_path / "gone")
        assert server.wait_until(lambda: any(
            problem.startswith("backlog: the oldest report has waited")
            for problem in health(server)["problems"]))
        assert health(server)["backlog_age_seconds"] > 1
    finally:
        server.stop()


def health(server):
    with urllib.request.urlopen(server.web_url + "/check_health", timeout=10) as response:
        return json.loads(response.read())
