"""Every channel delivers each alert once under faults, counted by what each fake service
received: SIGKILL of the server at random moments under load, and services down then back.
The fakes speak Slack's, Standard Webhooks', GitHub's and GitLab's APIs on loopback ports."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
from collections import defaultdict

from standardwebhooks.webhooks import Webhook

from support.fake_services import (SLACK_PATH, FakeGitHub, FakeGitLab, FakeReceiver, FakeSlack,
                                   LoopbackServer, Reply)
from support.server import FlawlessProcess, start_server
from support.smtp import SmtpSink

from .common import BOB_LINE, kill_repeatedly_under_load, record_body, report

THRESHOLD = 5
FUNCTIONS = [f"load_{index:02d}" for index in range(12)]
SECRET = "whsec_" + base64.b64encode(b"flawless-webhook-test-key-32byte").decode()
NAME = re.compile(r"\b(load_\d\d)\b")


class Services:
    """Every fake on its own loopback port, and the options that point a server at them."""

    def __init__(self) -> None:
        self.slack, self.receiver = FakeSlack(), FakeReceiver()
        self.github, self.gitlab = FakeGitHub(), FakeGitLab()
        self.servers = {name: LoopbackServer(fake).start() for name, fake in (
            ("slack", self.slack), ("webhook", self.receiver), ("github", self.github),
            ("gitlab", self.gitlab))}

    def options(self) -> dict[str, str]:
        urls = {name: server.url for name, server in self.servers.items()}
        return {"slack_webhook_url": urls["slack"] + SLACK_PATH,
                "webhook_urls": urls["webhook"] + "/hooks/flawless?token=w3bh00kT0ken",
                "webhook_secret": SECRET,
                "github_repo": self.github.repo, "github_token": self.github.token,
                "github_api_url": urls["github"],
                "gitlab_url": urls["gitlab"], "gitlab_project": self.gitlab.project,
                "gitlab_token": self.gitlab.token,
                "alert_channels": "email,slack,webhook,github,gitlab",
                "mail_max_per_recipient_per_hour": "0", "mail_max_per_hour": "0"}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    # -- what each received, by the function an alert is about --

    def slack_ids(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for message in self.slack.messages:
            name = NAME.search(message["blocks"][0]["text"]["text"]).group(1)
            found[name].add(message["blocks"][-1]["elements"][0]["text"].split(" · ")[-1])
        return found

    def webhook_ids(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for request in self.receiver.deliveries:
            event = json.loads(request.body)
            found[event["data"]["function_name"]].add(request.headers["webhook-id"])
        return found

    @staticmethod
    def issues(tracker) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        with tracker.lock:
            for issue in tracker.issues.values():
                found[NAME.search(issue.title).group(1)] += 1
        return found

    def check_once(self, due: set[str], sink: SmtpSink) -> None:
        """Each due error reached every channel once: one message id each, one issue each."""
        mails: dict[str, set[str]] = defaultdict(set)
        for _, message in sink.messages:
            found = NAME.search(message.get_body(("plain",)).get_content())
            if found:
                mails[found.group(1)].add(message["Message-ID"])
        for name, ids in (("mail", mails), ("slack", self.slack_ids()),
                          ("webhook", self.webhook_ids())):
            assert set(ids) == due, (name, sorted(ids), sorted(due))
            assert all(len(each) == 1 for each in ids.values()), (name, ids)
        for tracker in (self.github, self.gitlab):
            assert self.issues(tracker) == dict.fromkeys(due, 1), type(tracker).__name__
            assert all(not issue.comments for issue in tracker.issues.values())
        for request in self.receiver.deliveries:
            Webhook(SECRET).verify(request.body, request.headers)


def undelivered(server: FlawlessProcess) -> int:
    return server.query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")[0][0]


def test_sigkill_under_load_delivers_every_alert_once_on_every_channel(tmp_path, shop,
                                                                       smtp_sink, soak,
                                                                       backend_options):
    rounds = 30 if soak else 3
    services = Services()
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, report_error_threshold=THRESHOLD,
                          rate_limit_per_key=0, rate_limit_per_address=0,
                          **services.options(), **backend_options)
    try:
        server, _ = kill_repeatedly_under_load(server, rounds, 20261130, FUNCTIONS, shop.head())
        assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=90)
        assert server.wait_until(lambda: undelivered(server) == 0, timeout=120), server.log()
        stored = dict(server.query("SELECT function_name, count FROM errors"))
        due = {name for name, count in stored.items() if count >= THRESHOLD}
        assert due
        time.sleep(1.0)  # a duplicate would be a bug: give it the chance to show
        services.check_once(due, smtp_sink)
    finally:
        server.stop()
        services.stop()


def health(server: FlawlessProcess) -> dict:
    with urllib.request.urlopen(server.web_url + "/check_health", timeout=10) as answer:
        return json.load(answer)


def test_services_down_then_back_get_every_alert_once_and_health_names_no_secret(tmp_path,
                                                                                 shop,
                                                                                 smtp_sink,
                                                                                 backend_options):
    services = Services()
    services.servers["slack"].stop()                      # refusing connections
    services.github.script(*[Reply(502, b"<html>Bad gateway</html>")] * 3)
    services.receiver.script(*[Reply(503, b"down", {"Retry-After": "2"})] * 2)
    server = start_server(tmp_path / "server", repo_dir=shop.path,
                          smtp_hostport=smtp_sink.hostport, **services.options(),
                          **backend_options)
    try:
        names = FUNCTIONS[:4]
        assert server.post(record_body([report(dict(BOB_LINE, function_name=name))
                                        for name in names]))[0] == 200
        assert server.wait_until(lambda: health(server)["channels"]["slack"]["failing"] >= 1,
                                 timeout=30)
        status = health(server)
        slack = status["channels"]["slack"]
        assert slack["pending"] == 4 and slack["last_error"]
        shown = json.dumps(status)
        for secret in (SLACK_PATH, "s3cr3tW3bh00kT0k3n", "w3bh00kT0ken", SECRET,
                       services.github.token, services.gitlab.token):
            assert secret not in shown, secret
        services.servers["slack"].start()                 # back, on the same port
        assert server.wait_until(lambda: undelivered(server) == 0, timeout=90), server.log()
        time.sleep(1.0)
        services.check_once(set(names), smtp_sink)
        assert health(server)["channels"]["slack"] == {"pending": 0, "held": 0, "failing": 0,
                                                       "last_error": None}
        log = server.log()
        for secret in (SLACK_PATH, "w3bh00kT0ken", services.github.token,
                       services.gitlab.token):
            assert secret not in log, secret
    finally:
        server.stop()
        services.stop()
