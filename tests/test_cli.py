"""The command line: usage errors, check, configure, and a daemon started and stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.gitrepo import ALICE, BOB, CAROL, average_report, init_repo
from support.server import server_options, write_config


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
