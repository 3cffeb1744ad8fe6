"""Rule files edited under a running server: the next report follows the new rule, and a
broken edit leaves the previous rules in force and tells the default contact once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

from support.gitrepo import average_report
from support.server import server_options, start_server, write_config

RELOADED_WITHIN_SECONDS = 5  # a changed rule file is in force within this time

PRICE_REPORT = {"exception_type": "builtins.ValueError",
                "exception_message": "invalid literal for int() with base 10: 'twelve'",
                "traceback": [{"filename": "/srv/app/shop/pricing.py", "line_number": 12,
                               "function_name": "parse_price", "text": "return int(text)"}]}


def recipients_of(smtp_sink, subject_part):
    return [recipients for recipients, message in smtp_sink.messages
            if subject_part in message["Subject"]]


def health(server):
    with urllib.request.urlopen(server.web_url + "/check_health", timeout=10) as response:
        return json.loads(response.read())


def test_an_edited_rule_routes_the_next_report_and_a_broken_edit_keeps_it(
        tmp_path, shop, smtp_sink):
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=1)
    remapping = tmp_path / "server" / "email_remapping.yaml"
    try:
        server.record(average_report())
        assert [r for r, _ in smtp_sink.wait_for(1)] == [["bob@example.org"]]

        remapping.write_text("# Bob is on leave: Carol takes his mail.\n"
                             "bob@example.org: carol@example.net\n")
        time.sleep(RELOADED_WITHIN_SECONDS)
        server.record(PRICE_REPORT)
        mails = smtp_sink.wait_for(2)
        assert [r for r, _ in mails][1] == ["carol@example.net"]
        assert "email_remapping.yaml:2" in mails[1][1].get_body(("plain",)).get_content()

        remapping.write_text("bob@example.org: [carol@example.net\n")  # broken YAML
        note = smtp_sink.wait_for(1, where=lambda r, m: "broken" in m["Subject"])
        assert [r for r, _ in note] == [["oncall@example.com"]]
        assert re.search(r"email_remapping\.yaml:\d+: ", note[0][1].get_content())
        assert health(server)["rule_files"]["status"] == "broken"

        report = dict(PRICE_REPORT, traceback=[dict(PRICE_REPORT["traceback"][0],
                                                    function_name="parse_price_again")])
        server.record(report)
        mails = smtp_sink.wait_for(4)
        assert mails[-1][0] == ["carol@example.net"]  # the previous rules stay in force
        time.sleep(RELOADED_WITHIN_SECONDS)  # more polls of the broken file: still one note
        assert len(recipients_of(smtp_sink, "broken")) == 1
    finally:
        server.stop()


def test_start_refuses_a_broken_rule_file_naming_file_and_line(tmp_path):
    config = write_config(tmp_path, server_options(tmp_path / "data"))
    (tmp_path / "known_errors.yaml").write_text("- filename: shop/cart.py\n  colour: red\n")
    result = subprocess.run([sys.executable, "-m", "flawless", "start", "-conf", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{tmp_path / 'known_errors.yaml'}:2" in result.stderr
    assert "colour" in result.stderr
