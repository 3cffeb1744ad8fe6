"""The report port in-process, every way in over one gate: twisted.web's real request
handling over an in-memory transport (with the server's guards: keys checked and sizes
bounded before a body is read), a real SQLite inbox written by a ManualRunner (so a
test says when a commit happens), and a task.Clock for the rate limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from twisted.internet.task import Clock

from flawless.server.connections import ConnectionBounds, GuardedSite, make_guarded_request
from flawless.server.core.admission import ByteBudget, TrustedProxies
from flawless.server.ingest.gate import IngestGate
from flawless.server.ingest.inbox import InboxWriter
from flawless.server.ingest.keys import IngestKeys
from flawless.server.ingest.ratelimit import TokenBuckets
from flawless.server.ingest.root import build_report_root
from flawless.server.storage.records import reports_in_payload
from flawless.server.storage.sqlite import SqliteStorage
from support.http import Exchange, Response, raw_request
from support.runners import ManualRunner

MAX_BODY = 1024 * 1024


class ReportPort:
    """Every resource of the report port over a real SQLite inbox."""

    def __init__(self, directory: Path, keys: Sequence[str] = (), per_key: float = 0,
                 per_address: float = 0, allowed_origins: Sequence[str] = (),
                 max_body: int = MAX_BODY):
        self.clock = Clock()
        self.clock.advance(1_763_700_000.0)
        self.storage = SqliteStorage(str(directory / "flawless.sqlite3"))
        self.writer = ManualRunner()
        self.inbox = InboxWriter(self.storage, self.writer, self.clock)
        self.inbox.startService()
        ingest_keys, proxies = IngestKeys(keys), TrustedProxies()
        gate = IngestGate(self.inbox, ingest_keys, self.clock, TokenBuckets(per_key, per_key),
                          TokenBuckets(per_address, per_address), proxies)
        self.site = GuardedSite(build_report_root(gate, max_body, allowed_origins),
                                ConnectionBounds(), proxies, "rpc", self.clock)
        self.site.requestFactory = make_guarded_request(max_body, ByteBudget(0, 0), proxies,
                                                        ingest_keys.authorized)

    def send(self, method: str, path: str, body: bytes = b"",
             headers: Optional[dict[str, str]] = None, client_host: str = "127.0.0.1",
             commit: bool = True) -> Response:
        """One request; its commit (if any) runs at once unless ``commit`` is False."""
        exchange = Exchange(self.site, client_host).send(raw_request(method, path, body,
                                                                     headers))
        if commit:
            self.writer.run_all()
        return exchange.response()

    def stored_reports(self) -> list[Any]:
        """Every report in the inbox, as the processor will read them."""
        return [report for row in self.storage._query("SELECT payload FROM inbox ORDER BY id")
                for report in reports_in_payload(row["payload"])]

    @staticmethod
    def json(response: Response) -> Any:
        return json.loads(response.body)
