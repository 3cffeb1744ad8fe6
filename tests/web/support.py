"""A dashboard over a real Store and the real Twisted HTTP stack, driven in memory.

Requests go through twisted.web's own parser and Site over an in-memory transport; the
store is a real SQLite file filled with ErrorRecords the way the processor writes them.
"""

from __future__ import annotations

import datetime
import http.client
import io
import os
import urllib.parse
from dataclasses import replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import server

from flawless.config import build_config
from flawless.report import Frame, Report
from flawless.server.routing import ErrorKey
from flawless.server.rules import Rules, RulesReloader
from flawless.server.store import ErrorRecord, Store
from flawless.server.web import build_web_root

# Wednesday 11 November 2026, 12:00 UTC; its week starts on Monday 9 November.
NOW = datetime.datetime(2026, 11, 11, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
DAY = 86400.0


class DashboardApp:
    """What the dashboard needs of a server: store, config, clock, rules and their reloader,
    reader calls, health."""

    def __init__(self, directory: Path, **options: Any):
        raw = {"data_dir_path": str(directory / "data"), "config_dir_path": str(directory),
               **{name: str(value) for name, value in options.items()}}
        self.config = build_config(raw, str(directory / "flawless.cfg"))
        os.makedirs(self.config.data_dir_path, exist_ok=True)
        self.store = Store(os.path.join(self.config.data_dir_path, "flawless.sqlite3"))
        self.reactor = Clock()
        self.reactor.advance(NOW)
        self.health_extra: dict[str, Any] = {}
        self.rules = Rules()
        self.reloader = RulesReloader(self.config.config_dir_path, self._reloaded,
                                      lambda problems, fingerprint: None, clock=self.reactor)

    def _reloaded(self, rules: Rules) -> None:
        self.rules = rules

    def read_call(self, function: Any, *args: Any) -> defer.Deferred:
        """Run the read at once (the server runs it in its reader pool)."""
        return defer.maybeDeferred(function, *args)

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


def store_error(store: Store, error: ErrorRecord, occurrences: Sequence[float]) -> ErrorRecord:
    """Save ``error`` with one occurrence at each time, as the processor would."""
    with store.transaction() as connection:
        existing = store.find_error(error.key, connection)
        total = (existing.count if existing else 0) + len(occurrences)
        error = replace(error, error_id=existing.error_id if existing else 0, count=total,
                        first_seen=min(occurrences), last_seen=max(occurrences))
        error_id = store.save_error(connection, error)
        for when in occurrences:
            store.count_occurrences(connection, error_id, when, 1)
    saved = store.get_error(error_id)
    assert saved is not None
    return saved


class Response:
    """One HTTP answer."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8")


class _Socket:
    def __init__(self, data: bytes):
        self._file = io.BytesIO(data)

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return self._file


class Client:
    """Sends requests through twisted.web in memory and keeps cookies like a browser."""

    def __init__(self, app: DashboardApp, client_host: str = "127.0.0.1"):
        self.app = app
        self.root = build_web_root(app)
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
        transport = StringTransport(peerAddress=IPv4Address("TCP", self.client_host, 40000))
        channel = self.site.buildProtocol(transport.getPeer())
        channel.makeConnection(transport)
        channel.dataReceived(raw)
        answer = http.client.HTTPResponse(_Socket(transport.value()))  # type: ignore[arg-type]
        answer.begin()
        response = Response(answer.status, answer.headers, answer.read())
        channel.connectionLost(None)
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
