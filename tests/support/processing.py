"""The processor in-process: a real repository and SQLite file, every blocking call run at
once in the test's thread, and a task.Clock for its timers."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from typing import Any, Optional

from twisted.internet.task import Clock

from flawless.server.core.bounds import HourlyBounds
from flawless.server.core.model import AlertSettings, Resolution, Rules, RoutingSettings
from flawless.server.delivery.composing import Composer, Destinations
from flawless.server.delivery.queueing import AlertQueue
from flawless.server.git.repository import Repository
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.fix_trailers import FixTrailerService
from flawless.server.processing.processor import Processor
from flawless.server.storage.sqlite import SqliteStorage
from flawless.server.threads import InlineRunner

NOW = 1_763_700_000.0


class World:
    """A processor over a real repository and database, and what it queued for mail."""

    def __init__(self, tmp_path: Any, repo_dir: Any, rules: Rules = Rules(), threshold: int = 2,
                 bounds: HourlyBounds = HourlyBounds(), destinations: Destinations = Destinations(),
                 channels: tuple[str, ...] = ("email",), comment_interval: float = 3600.0,
                 git: Any = None):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.storage = SqliteStorage(str(tmp_path / "flawless.sqlite3"))
        runner = self.runner = InlineRunner()
        self.repository = Repository(str(repo_dir))
        self.blamer = BlameService(self.repository, git or runner, runner, self.clock)
        self.rules = rules
        self.woken = 0
        self.processor = Processor(
            self.storage, runner, runner, self.blamer, lambda: self.rules, RoutingSettings(),
            AlertSettings(report_error_threshold=threshold, default_contact="oncall@example.com"),
            AlertQueue(Composer("flawless@example.com", destinations,
                                lambda: "http://flawless.test"),
                       bounds, channels, comment_interval),
            self.wake_outbox, clock=self.clock)

    def wake_outbox(self) -> None:
        self.woken += 1

    def send(self, *reports: dict) -> None:
        calls = [{"jsonrpc": "2.0", "id": n, "method": "record_error",
                  "params": {"report": report}} for n, report in enumerate(reports)]
        self.storage.add_to_inbox([(json.dumps(calls).encode(), len(calls))], self.clock.seconds())

    def counts(self) -> dict[str, int]:
        return {row["function_name"]: row["count"] for row in self.storage._query(
            "SELECT function_name, count FROM errors")}

    def mails(self) -> list[list[str]]:
        return [json.loads(row["recipients"]) for row in self.storage._query(
            "SELECT recipients FROM outbox ORDER BY id")]

    def messages(self) -> list[EmailMessage]:
        """Every queued mail, parsed as its recipient reads it."""
        return [email.message_from_bytes(bytes(row["message"]), policy=email.policy.default)
                for row in self.storage._query("SELECT message FROM outbox ORDER BY id")]

    def process(self, *reports: dict) -> None:
        """Send ``reports`` in one request and process the inbox."""
        self.send(*reports)
        self.processor.wake()

    def trailers(self) -> FixTrailerService:
        """A started reader of the repository's Fixes: trailers (it reads them at once)."""
        service = FixTrailerService(self.blamer, self.storage, self.runner, self.clock, 60.0)
        service.startService()
        return service

    def resolution(self, function_name: str) -> Optional[Resolution]:
        """How the error in ``function_name`` is resolved, if it is."""
        [row] = self.storage._query("SELECT id FROM errors WHERE function_name = ?",
                                    function_name)
        return self.storage.resolutions([row["id"]]).get(row["id"])
