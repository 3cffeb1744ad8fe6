"""The server's stages in one process: JSON-RPC ingest (twisted.web over an in-memory
transport), the processor with a real repository, the outbox and every configured channel,
each blocking call run at once, one task.Clock. HTTP services are fakes reached through
treq's StubTreq (in memory), mail goes to a real SMTP server on loopback when one is given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web import resource, server

from flawless.config import Config, build_config
from flawless.server.delivery.outbox import OutboxService
from flawless.server.delivery.wiring import build_delivery
from flawless.server.git.repository import Repository
from flawless.server.ingest.gate import IngestGate
from flawless.server.ingest.inbox import InboxWriter
from flawless.server.ingest.keys import IngestKeys
from flawless.server.ingest.rpc import RpcResource
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.processor import Processor
from flawless.server.rules.loading import load_rules
from flawless.server.settings import alert_settings, routing_settings
from flawless.server.storage.sqlite import SqliteStorage
from flawless.server.threads import InlineRunner
from support.fake_services import Fake, FakeResource
from support.http import Exchange, raw_request

NOW = 1_763_700_000.0   # Friday 21 November 2025, 04:40 UTC
BASE_URL = "http://flawless.test:8080"


class Pipeline:
    """Reports in, alerts out, on a clock the test moves."""

    def __init__(self, directory: Path, repo_dir: Optional[Path],
                 fakes: Optional[Mapping[str, Fake]] = None, now: float = NOW,
                 storage: Any = None, **options: Any):
        """``storage``: an opened backend (tests/conftest.py: open_store); by default a
        SQLite database in ``directory``."""
        raw = {"data_dir_path": str(directory / "data"), "config_dir_path": str(directory),
               "default_contact": "oncall@example.com", "email_domain_name": "example.com",
               "smtp_from": "flawless@example.com", "report_error_threshold": "1",
               "hostname": BASE_URL, **{name: str(value) for name, value in options.items()}}
        self.config: Config = build_config(raw, str(directory / "flawless.cfg"))
        os.makedirs(self.config.data_dir_path, exist_ok=True)
        self.storage = storage if storage is not None else \
            SqliteStorage(os.path.join(self.config.data_dir_path, "flawless.sqlite3"))
        self.clock = Clock()
        self.clock.advance(now)
        runner = InlineRunner()
        self.fakes = dict(fakes or {})
        self.rules = load_rules(self.config.config_dir_path)
        self.delivery = build_delivery(self.config, self.storage, runner, runner, runner,
                                       self.clock, lambda: BASE_URL,
                                       treq=StubTreq(FakeResource(self.fakes)),
                                       issue_request_interval=0.0)
        self.outbox = OutboxService(self.storage, runner, self.delivery.channels,
                                    self.delivery.alerts.composer, self.clock,
                                    unit_random=lambda: 0.5)
        blamer = None
        if repo_dir is not None:
            blamer = BlameService(Repository(str(repo_dir)), runner, runner, self.clock)
        self.processor = Processor(self.storage, runner, runner, blamer, lambda: self.rules,
                                   routing_settings(self.config), alert_settings(self.config),
                                   self.delivery.alerts, self.outbox.wake, clock=self.clock)
        self.inbox = InboxWriter(self.storage, runner, self.clock,
                                 on_stored=self.processor.wake_soon)
        root = resource.Resource()
        root.putChild(b"rpc", RpcResource(IngestGate(self.inbox, IngestKeys(()), self.clock),
                                          1 << 20))
        self.site = server.Site(root)

    def start(self) -> "Pipeline":
        for part in (self.outbox, self.processor, self.inbox):
            part.startService()
        return self

    def stop(self) -> None:
        for part in (self.inbox, self.processor, self.outbox):
            part.stopService()

    def send(self, *reports: Mapping[str, Any]) -> list[Any]:
        """POST the reports in one JSON-RPC batch; return the answers once processed."""
        body = json.dumps([{"jsonrpc": "2.0", "id": index, "method": "record_error",
                            "params": {"report": dict(report)}}
                           for index, report in enumerate(reports)]).encode()
        exchange = Exchange(self.site).send(raw_request(
            "POST", "/rpc", body, {"Content-Type": "application/json"}))
        self.clock.advance(0)
        answer = exchange.response()
        assert answer.status == 200, answer.body
        self.advance(0.1)
        return [item.get("result") for item in json.loads(answer.body)]

    def advance(self, seconds: float, step: float = 5.0) -> None:
        """Let ``seconds`` pass on the clock, in steps (timers fire on the way)."""
        left = seconds
        while left > 0:
            self.clock.advance(min(step, left))
            left -= step
        self.clock.advance(0)

    def pending(self) -> int:
        """Entries not delivered yet (held ones included)."""
        return self.storage.outbox_depth()

    def query(self, sql: str, *args: Any) -> list[Any]:
        return self.storage._query(sql, *args)
