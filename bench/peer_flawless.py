"""The peer: the original Flawless server (flawless==0.4.5) in its own virtualenv.

Its config is written directly (its ``flawless configure`` writes booleans it cannot read
back), booleans are left at their defaults, and it is started by ``peer_launcher.py`` so
that it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping, Optional

from harness import BENCH_DIR, ensure_venv, free_port, rss_kib, write_config

PEER_REQUIREMENTS = ("flawless==0.4.5",)


def peer_python() -> Path:
    """The python of the peer's virtualenv (created and installed on first use)."""
    return ensure_venv("flawless045", PEER_REQUIREMENTS)


class PeerServer:
    """The original Flawless server on loopback ports, as a context manager."""

    def __init__(self, options: Mapping[str, object] = (), workdir: Optional[Path] = None):
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="flawless-peer-"))
        self.port, self.http_port = free_port(), free_port()
        base = {"port": self.port, "http_port": self.http_port,
                "hostname": f"http://127.0.0.1:{self.http_port}",
                "data_dir_path": self.workdir / "data", "log_file": self.workdir / "peer.log",
                "log_level": "WARNING", "repo_dir": self.workdir / "no-repo"}
        self.config_path = write_config(self.workdir, {**base, **dict(options)})
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "PeerServer":
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        output = open(self.workdir / "peer.out", "ab")
        # Its own session, so that stopping it also stops the web process it forks.
        self.process = subprocess.Popen(
            [str(peer_python()), str(BENCH_DIR / "peer_launcher.py"), str(self.config_path)],
            stdout=output, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        output.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("peer exited: " + self.output())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("peer did not start within 30 s: " + self.output())

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        """What the peer printed (last 3000 characters)."""
        path = self.workdir / "peer.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @property
    def pid(self) -> int:
        """The peer's Thrift server process id."""
        assert self.process is not None
        return self.process.pid

    def rss_kib(self) -> int:
        """Resident memory of the peer's Thrift server process."""
        return rss_kib(self.pid)
