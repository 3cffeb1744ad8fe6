"""Run the real flawless server as a subprocess (``flawless start -conf ...``) for tests."""

from __future__ import annotations

import configparser
import gzip
import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping, Optional

LISTENING_FILE = "listening.json"


def write_config(directory: Path, options: Mapping[str, Any]) -> Path:
    """Write a flawless.cfg with ``options`` into ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["[flawless]"] + [f"{name} = {value}" for name, value in options.items()]
    path = directory / "flawless.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def database_url(config_path: Path) -> str:
    """The PostgreSQL database_url of a config, or "" when it uses SQLite."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config_path)
    if parser.get("flawless", "storage", fallback="sqlite").strip() != "postgresql":
        return ""
    return parser.get("flawless", "database_url")


class FlawlessProcess:
    """One ``flawless start`` subprocess on ephemeral loopback ports."""

    def __init__(self, config_path: Path, data_dir: Path, command: Optional[list[str]] = None):
        self.config_path = config_path
        self.data_dir = data_dir
        self.database_url = database_url(config_path)
        self.command = command or [sys.executable, "-m", "flawless"]
        self.process: Optional[subprocess.Popen] = None
        self.port = 0
        self.http_port = 0
        self.log_path = data_dir.parent / "server.log"

    def start(self, timeout: float = 30.0) -> "FlawlessProcess":
        """Start the server and wait until both listeners are bound."""
        listening = self.data_dir / LISTENING_FILE
        if listening.exists():
            listening.unlink()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self.command, "start", "-conf", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flawless exited with {self.process.returncode}:\n"
                                   + self.log())
            if listening.exists():
                info = json.loads(listening.read_text())
                if info.get("pid") == self.process.pid:
                    self.port, self.http_port = info["port"], info["http_port"]
                    return self
            time.sleep(0.05)
        raise RuntimeError("flawless did not start in time:\n" + self.log())

    def log(self) -> str:
        """Everything the server logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def hostport(self) -> str:
        """host:port of the JSON-RPC listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def rpc_url(self) -> str:
        """URL of the JSON-RPC endpoint."""
        return f"http://127.0.0.1:{self.port}/rpc"

    @property
    def web_url(self) -> str:
        """Base URL of the dashboard."""
        return f"http://127.0.0.1:{self.http_port}"

    def post(self, body: bytes, headers: Optional[Mapping[str, str]] = None,
             gzip_body: bool = False) -> tuple[int, dict[str, str], bytes]:
        """POST raw bytes to /rpc; return (status, headers, body) whatever the status."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if gzip_body:
            body = gzip.compress(body)
            all_headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(self.rpc_url, data=body, headers=all_headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def call(self, method: str, params: Any = None, request_id: Any = 1,
             headers: Optional[Mapping[str, str]] = None) -> dict:
        """One JSON-RPC call; return the decoded answer object."""
        payload = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            payload["params"] = params
        status, _, body = self.post(json.dumps(payload).encode(), headers)
        assert status == 200, (status, body)
        return json.loads(body)

    def record(self, report: Mapping[str, Any], headers: Optional[Mapping[str, str]] = None
               ) -> dict:
        """Send one report with record_error; return the answer object."""
        return self.call("record_error", {"report": dict(report)}, headers=headers)

    def db(self) -> sqlite3.Connection:
        """A read connection to the server's SQLite database."""
        return sqlite3.connect(str(self.data_dir / "flawless.sqlite3"), timeout=10)

    def query(self, sql: str, *args: Any) -> list[tuple]:
        """Run a read query (``?`` placeholders) against the server's database, SQLite or
        PostgreSQL."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url) as connection:
                return connection.execute(sql.replace("?", "%s"), args).fetchall()
        with self.db() as connection:
            return connection.execute(sql, args).fetchall()

    def wait_until(self, predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
        """Poll ``predicate`` until it is true; return its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() > deadline:
                return bool(value)
            time.sleep(interval)

    def inbox_depth(self) -> int:
        """Reports accepted but not processed yet."""
        return self.query("SELECT COALESCE(SUM(reports), 0) FROM inbox")[0][0]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


def server_options(data_dir: Path, repo_dir: Optional[Path] = None,
                   smtp_hostport: str = "", **extra: Any) -> dict[str, Any]:
    """Options for a test server on ephemeral loopback ports."""
    options: dict[str, Any] = {
        "port": 0,
        "http_port": 0,
        "bind_address": "127.0.0.1",
        "data_dir_path": str(data_dir),
        "email_domain_name": "example.com",
        "default_contact": "oncall@example.com",
        "smtp_from": "flawless@example.com",
        "report_error_threshold": 1,
        "log_level": "debug",
    }
    if repo_dir is not None:
        options["repo_dir"] = str(repo_dir)
    if smtp_hostport:
        options["smtp_host"] = smtp_hostport
    options.update(extra)
    return options


def start_server(directory: Path, **options: Any) -> FlawlessProcess:
    """Write a config under ``directory`` and start a server with it."""
    data_dir = directory / "data"
    config = write_config(directory, server_options(data_dir, **options))
    return FlawlessProcess(config, data_dir).start()

