"""Rule files edited under a running server: the next report follows the new rule, and a
broken edit leaves the previous rules in force and tells the default contact once."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from support.gitrepo import average_report
from support.server import FlawlessProcess, start_server

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

        before = health(server)["rule_files"]["version"]
        remapping.write_text("# Bob is on leave: Carol takes his mail.\n"
                             "bob@example.org: carol@example.net\n")
        assert server.wait_until(lambda: health(server)["rule_files"]["version"] != before,
                                 timeout=RELOADED_WITHIN_SECONDS)
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
        time.sleep(2.5)  # more polls (every 2 s) of the broken file: still one note
        assert len(recipients_of(smtp_sink, "broken")) == 1
    finally:
        server.stop()


def test_a_broken_rule_file_never_stops_a_start(tmp_path, shop, smtp_sink):
    directory = tmp_path / "server"
    remapping = directory / "email_remapping.yaml"
    directory.mkdir()
    remapping.write_text("bob@example.org: carol@example.net\n")
    server = start_server(directory, repo_dir=shop.path, smtp_hostport=smtp_sink.hostport,
                          report_error_threshold=1)
    server.stop()
    remapping.write_text("bob@example.org: [carol@example.net\n")  # a hand-edit breaks it
    restarted = FlawlessProcess(server.config_path, server.data_dir).start()
    try:
        status = health(restarted)
        assert status["status"] == "degraded"
        assert status["rule_files"]["status"] == "broken"
        assert status["rule_files"]["problems"][0].startswith(f"{remapping}:2: YAML syntax")
        assert "the last rules that loaded" in status["rule_files"]["in_force"]
        note = smtp_sink.wait_for(1, where=lambda r, m: "broken" in m["Subject"])
        assert [r for r, _ in note] == [["oncall@example.com"]]
        restarted.record(average_report())  # Bob's line: the kept remapping sends it to Carol
        mails = smtp_sink.wait_for(1, where=lambda r, m: "broken" not in m["Subject"])
        assert [r for r, _ in mails] == [["carol@example.net"]]
    finally:
        restarted.stop()
    again = FlawlessProcess(server.config_path, server.data_dir).start()
    try:
        assert health(again)["rule_files"]["status"] == "broken"
        time.sleep(1)
        assert len(recipients_of(smtp_sink, "broken")) == 1  # once, not once per start
    finally:
        again.stop()
