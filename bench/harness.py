"""Shared benchmark machinery: virtualenvs, servers, alternating rounds, medians, tables.

Every benchmark alternates our side and the peer's side for several rounds in the same
run and reports medians and their ratio, so machine noise hits both sides alike.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / ".peers"
CACHE_DIR = BENCH_DIR / ".cache"
LISTENING_FILE = "listening.json"


def ensure_venv(name: str, requirements: Sequence[str], system_site_packages: bool = False) -> Path:
    """The python of virtualenv ``bench/.peers/NAME`` holding ``requirements``, made if needed."""
    venv = PEERS_DIR / name
    python = venv / "bin" / "python"
    marker = venv / "bench-requirements.json"
    wanted = json.dumps(sorted(requirements))
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "venv", str(venv)]
    if system_site_packages:
        command.insert(3, "--system-site-packages")
    print(f"[setup] creating virtualenv {venv} with {', '.join(requirements)}", flush=True)
    subprocess.run(command, check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *requirements], check=True)
    marker.write_text(wanted)
    return python


def reexec_in(python: Path) -> None:
    """Run this script again under ``python`` unless it already is that interpreter."""
    if Path(sys.prefix).resolve() == python.parent.parent.resolve():
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])))
    os.execve(str(python), [str(python), *sys.argv], env)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status(pid: int, field: str) -> int:
    """A number from ``/proc/PID/status`` (``VmRSS``, ``Threads``...); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (0 once it is gone)."""
    return proc_status(pid, "VmRSS")


def write_config(directory: Path, options: Mapping[str, object]) -> Path:
    """Write ``directory/flawless.cfg`` with a ``[flawless]`` section holding ``options``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "flawless.cfg"
    lines = ["[flawless]"] + [f"{name} = {value}" for name, value in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class OurServer:
    """``python -m flawless start -conf CFG`` on ephemeral loopback ports, as a context manager."""

    def __init__(self, options: Mapping[str, object], workdir: Optional[Path] = None,
                 python: str = sys.executable, rule_files: Mapping[str, str] = {}):
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="flawless-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name, text in rule_files.items():
            (self.workdir / name).write_text(text)
        self.data_dir = self.workdir / "data"
        base = {"port": 0, "http_port": 0, "bind_address": "127.0.0.1",
                "data_dir_path": self.data_dir, "log_level": "warn"}
        self.config_path = write_config(self.workdir, {**base, **options})
        self.python = python
        self.process: Optional[subprocess.Popen] = None
        self.port = self.http_port = self.server_pid = 0

    def __enter__(self) -> "OurServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        listening = self.data_dir / LISTENING_FILE
        if listening.exists():
            listening.unlink()
        log = open(self.workdir / "server.log", "ab")
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.process = subprocess.Popen([self.python, "-m", "flawless", "start", "-conf",
                                         str(self.config_path)], stdout=log,
                                        stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flawless exited with {self.process.returncode}: {self.log()}")
            if listening.exists():
                info = json.loads(listening.read_text())
                self.server_pid = info["pid"]
                self.port, self.http_port = info["port"], info["http_port"]
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("flawless did not start within 30 s: " + self.log())

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process)

    def log(self) -> str:
        """What the server logged so far (last 3000 characters)."""
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.server_pid

    def health(self, timeout: float = 10.0) -> dict:
        """The JSON of ``/check_health``."""
        url = f"http://127.0.0.1:{self.http_port}/check_health"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())

    def wait_idle(self, timeout: float = 60.0) -> float:
        """Wait until the inbox is empty; return the seconds waited (``timeout`` if never)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.health().get("inbox_depth", 0) == 0:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        return time.monotonic() - started


def stop_process(process: Optional[subprocess.Popen], timeout: float = 15.0) -> None:
    """SIGTERM ``process`` and wait; SIGKILL it if it does not stop in ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_ingest_clients(python: object, processes: int, seconds: float,
                       **options: object) -> float:
    """Reports a second acknowledged with ``processes`` ingest_worker.py clients (run by
    ``python``) sending at once; ``options`` are the worker's JSON arguments (target, port,
    batch, ...)."""
    start_at = time.time() + 1.0
    workers = [subprocess.Popen(
        [str(python), str(BENCH_DIR / "ingest_worker.py"),
         json.dumps({**options, "seconds": seconds, "start_at": start_at, "seed": number})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for number in range(processes)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=seconds + 60)
        if worker.returncode != 0:
            raise RuntimeError(f"{options.get('target')} client failed: {err[-2000:]}")
        results.append(json.loads(out))
    return sum(r["acknowledged"] for r in results) / max(r["seconds"] for r in results)


@dataclass
class Rounds:
    """Figures of named contestants gathered over alternating rounds."""

    figures: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        """Record one round's figure of ``name``."""
        self.figures.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        """Median over the rounds of ``name``."""
        return statistics.median(self.figures[name])


def alternate(rounds: int, contestants: Mapping[str, Callable[[], float]],
              rest: Callable[[], None] = lambda: None) -> Rounds:
    """Run every contestant once per round, reversing the order every other round."""
    result = Rounds()
    names = list(contestants)
    for number in range(rounds):
        order = names if number % 2 == 0 else names[::-1]
        for name in order:
            value = contestants[name]()
            result.add(name, value)
            print(f"  round {number + 1}/{rounds} {name}: {value:,.1f}", flush=True)
            rest()
    return result


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def ratio_text(ours: float, peer: float, higher_is_better: bool) -> str:
    """How many times better ours is than the peer's figure, as text."""
    if not ours or not peer:
        return "n/a"
    times = ours / peer if higher_is_better else peer / ours
    return f"{times:,.1f}x"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned plain-text (and Markdown-compatible) table."""
    cells = [[str(cell) for cell in header]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    print(flush=True)


def machine_line() -> str:
    """One line describing this machine: cores, CPU model, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"

