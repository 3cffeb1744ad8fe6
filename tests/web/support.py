"""A dashboard over a real Store and the real Twisted HTTP stack, driven in memory.

Requests go through twisted.web's own parser and Site over an in-memory transport; the
store is a real SQLite file filled with ErrorRecords the way the processor writes them.
"""

from __future__ import annotations

import datetime
import os
import urllib.parse
from dataclasses import replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from twisted.internet.task import Clock
from twisted.web import server

from flawless.config import build_config
from flawless.report import Frame, Report
from flawless.server.core.model import ErrorKey, ErrorRecord, Rules
from flawless.server.rules.reloading import RulesService
from flawless.server.storage.sqlite import SqliteStorage
from flawless.server.threads import InlineRunner
from flawless.server.web.health import HealthPage, config_secrets
from flawless.server.web.fixes import Commits
from flawless.server.web.root import WebParts, build_web_root
from support.http import Exchange, Response

# Wednesday 11 November 2026, 12:00 UTC; its week starts on Monday 9 November.
NOW = datetime.datetime(2026, 11, 11, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
DAY = 86400.0


class DashboardApp:
    """What the dashboard needs of a server: storage, config, clock, the rules in force,
    reads run at once, health."""

    def __init__(self, directory: Path, **options: Any):
        raw = {"data_dir_path": str(directory / "data"), "config_dir_path": str(directory),
               **{name: str(value) for name, value in options.items()}}
        self.config = build_config(raw, str(directory / "flawless.cfg"))
        os.makedirs(self.config.data_dir_path, exist_ok=True)
        self.store = SqliteStorage(os.path.join(self.config.data_dir_path, "flawless.sqlite3"))
        self.reactor = Clock()
        self.reactor.advance(NOW)
        self.health_extra: dict[str, Any] = {}
        self.commits: Optional[Commits] = None   # a repository's commit lookup, when set
        self.rules_service = RulesService(self.config.config_dir_path,
                                          self.config.data_dir_path, lambda problems: None,
                                          clock=self.reactor)
        self.rules_service.startService()

    @property
    def rules(self) -> Rules:
        """The rules in force."""
        return self.rules_service.current

    def parts(self) -> WebParts:
        """The dashboard's dependencies, reads run at once (the server runs them in its
        reader pool)."""
        reader = InlineRunner()
        return WebParts(
            storage=self.store, reader=reader, writer=reader, clock=self.reactor,
            health=HealthPage(self.health, reader, config_secrets(self.config)),
            config_dir=self.config.config_dir_path, config_path=self.config.path or "",
            admin_password=self.config.admin_password, reload_rules=self.rules_service.poll,
            viewer_password=self.config.viewer_password,
            secure_cookies=self.config.behind_tls, page_size=self.config.page_size,
            commits=self.commits)

    def health(self) -> dict[str, Any]:
        """A status in the server's shape."""
        return {"status": "ok", "version": "test", "uptime_seconds": 1.0,
                "inbox_depth": self.store.inbox_depth(),
                "outbox_depth": self.store.outbox_depth(), **self.health_extra}


def report(function: str = "total", line: int = 12, text: str = "return sum(prices)",
           exception_type: str = "builtins.TypeError", message: str = "unsupported operand",
           **extra: Any) -> Report:
    """A two-frame report whose innermost frame is in shop/cart.py."""
    frames = (Frame("/srv/app/shop/views.py", 40, "checkout", "cart.total()", {"user": "'7'"}),
              Frame("/srv/app/shop/cart.py", line, function, text, {"prices": "['1', 2]"}))
    return Report(exception_type, message, frames, hostname=extra.pop("hostname", "web-3"),
                  revision=extra.pop("revision", "9fceb02d0ae598e95dc970b74767f19372d61af8"),
                  **extra)


def record(filename: str = "shop/cart.py", function: str = "total", line: int = 12,
           text: str = "return sum(prices)", author: Optional[tuple[str, str]] = (
               "Alice Liddell", "alice@example.com"), **changes: Any) -> ErrorRecord:
    """An error as the processor stores it, blamed on ``author`` (None: on nobody)."""
    base = ErrorRecord(
        error_id=0, key=ErrorKey(filename, function, text), line_number=line,
        exception_type="builtins.TypeError", blamed=author is not None,
        author_name=author[0] if author else None, author_email=author[1] if author else None,
        commit_sha="3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39" if author else None,
        commit_summary="Sum prices in the cart" if author else None,
        commit_timestamp=NOW - 30 * DAY if author else None,
        blame_revision="9fceb02d0ae598e95dc970b74767f19372d61af8" if author else None,
        blame_at_requested=True if author else None, count=0, first_seen=NOW, last_seen=NOW,
        last_report=report(function, line, text), known=False, alerted_at=None, recipients=(),
        explanation=("shop/cart.py:12 is the innermost frame in the repository",
                     "git blame: alice@example.com"))
    return replace(base, **changes)


def store_error(store: SqliteStorage, error: ErrorRecord,
                occurrences: Sequence[float]) -> ErrorRecord:
    """Save ``error`` with one occurrence at each time, as the processor would."""
    with store.transaction() as transaction:
        state = transaction.error_state(error.key)
        total = (state.count if state else 0) + len(occurrences)
        error = replace(error, error_id=state.error_id if state else 0, count=total,
                        first_seen=min(occurrences), last_seen=max(occurrences))
        error_id = transaction.save_error(error)
        for when in occurrences:
            transaction.count_occurrences(error_id, when, 1)
    saved = store.find_error(error.key)
    assert saved is not None and saved.error_id == error_id
    return saved


class Client:
    """Sends requests through twisted.web in memory and keeps cookies like a browser."""

    def __init__(self, app: DashboardApp, client_host: str = "127.0.0.1"):
        self.app = app
        self.root = build_web_root(app.parts())
        self.site = server.Site(self.root, reactor=app.reactor)
        self.site.displayTracebacks = False
        self.cookies: dict[str, str] = {}
        self.client_host = client_host

    def request(self, method: str, path: str, form: Optional[Mapping[str, Any]] = None,
                headers: Optional[Mapping[str, str]] = None) -> Response:
        """Send one request; return the complete answer."""
        body = urllib.parse.urlencode(form or {}).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", "Host: flawless.test", "Connection: close"]
        if form is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded",
                      f"Content-Length: {len(body)}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        exchange = Exchange(self.site, self.client_host).send(raw)
        response = exchange.response()
        exchange.close()
        for value in response.headers.get_all("set-cookie") or []:
            jar = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **params: Any) -> Response:
        """GET ``path`` with query parameters."""
        query = urllib.parse.urlencode(params)
        return self.request("GET", f"{path}?{query}" if query else path)

    def post(self, path: str, form: Mapping[str, Any]) -> Response:
        """POST a form."""
        return self.request("POST", path, form)
