"""Benchmark 4: scale. A million distinct errors; server memory and /check_health latency.

Run: python bench/scale.py   [--errors 1000000] [--batch 500] [--processes 3] [--frames 3]
                             [--peer-errors 100000] [--peer-seconds 45]

Ours (no repository, so nothing is blamed; rate limits off; an alert threshold no error
reaches, so no mail): several client processes send ERRORS distinct errors (each report's
innermost function has its own name, so each is its own error key) in batches over
kept-open connections. Meanwhile the server's RSS is sampled every 0.5 s and
``/check_health`` is fetched one request after another from a separate thread. Figures:
RSS before, at its peak and after the inbox is drained, RSS as the errors are processed,
health latency p50/p99/max, sending and draining time, database size.

Peer: the original Flawless 0.4.5 keeps every error in memory and runs one git blame per
new error, so it gets fewer errors (at most PEER_ERRORS, at most PEER_SECONDS of sending)
and the figure compared is RSS growth in bytes per distinct error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from harness import (BENCH_DIR, OurServer, machine_line, percentile, print_table, proc_status,
                     ratio_text, rss_kib)
from payloads import make_report, rpc_call

# Capacity is measured, so nothing may throttle or mail: no rate limits, and an alert
# threshold no error reaches (each error occurs once).
OURS_OPTIONS = {"rate_limit_per_address": 0, "rate_limit_per_key": 0,
                "report_error_threshold": 1000000}
MARK = "@SERIAL@"
RSS_INTERVAL = 0.5
HEALTH_PAUSE = 0.05
HEALTH_TARGET_MS = 100.0
FLAT_SHARE = 0.01
PEER_BATCH = 100
PEER_BUSY_THREADS = 4


def distinct_report(serial: int, frames: int, tag: Optional[str] = None) -> dict[str, Any]:
    """The innermost ``frames`` frames of a realistic report (with locals), its innermost
    function named after ``tag`` (default: the serial), so every tag is a distinct error."""
    report = make_report(serial, 1)
    traceback = [dict(frame) for frame in report["traceback"][-frames:]]
    innermost = traceback[-1]
    innermost["function_name"] = f"{innermost['function_name']}_{tag or serial}"
    return {**report, "traceback": traceback}


def call_pieces(frames: int) -> list[bytes]:
    """One ``record_error`` call as JSON, split where the serial goes (function name, id)."""
    call = rpc_call(distinct_report(0, frames, MARK), MARK)  # type: ignore[arg-type]
    return json.dumps(call, separators=(",", ":")).encode().split(MARK.encode())


# -- client processes ----------------------------------------------------------------------

def send_ours(port: int, first: int, count: int, batch: int, frames: int) -> dict[str, Any]:
    """Send serials first..first+count to our server in batches on one kept-open connection."""
    pieces = call_pieces(frames)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Content-Type": "application/json"}
    accepted = refused = 0
    largest = 0
    for start in range(first, first + count, batch):
        serials = range(start, min(start + batch, first + count))
        body = b"[" + b",".join(str(n).encode().join(pieces) for n in serials) + b"]"
        largest = max(largest, len(body))
        connection.request("POST", "/rpc", body, headers)
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status != 200:
            refused += len(serials)
            continue
        done = sum(1 for result in json.loads(payload)
                   if isinstance(result.get("result"), dict) and result["result"].get("accepted"))
        accepted += done
        refused += len(serials) - done
    return {"accepted": accepted, "refused": refused, "largest_body": largest}


def peer_threads(pid: int) -> int:
    """How many threads process ``pid`` runs (the peer runs one per call)."""
    return proc_status(pid, "Threads")


def send_peer(port: int, pid: int, count: int, seconds: float, frames: int) -> dict[str, Any]:
    """Send up to ``count`` distinct errors to the peer for at most ``seconds``: batches of
    PEER_BATCH calls pipelined on its Thrift connection, each batch once the previous one's
    threads are done (it handles a call in a thread of its own and drops a new error when
    too many git blames run at once, so it must not be sent more than it can take)."""
    from peer_thrift import connect, encoded_record_error as encoded

    sock, client = connect(port, timeout_ms=60000)
    idle_threads = peer_threads(pid)
    deadline = time.monotonic() + seconds
    sent = 0
    while sent < count and time.monotonic() < deadline:
        serials = range(sent, min(sent + PEER_BATCH, count))
        sock.write(b"".join(encoded(distinct_report(n, frames)) for n in serials))
        for _ in serials:
            client.recv_record_error()
        sent += len(serials)
        while peer_threads(pid) > idle_threads + PEER_BUSY_THREADS and \
                time.monotonic() < deadline + 30:
            time.sleep(0.002)
    return {"sent": sent}


def worker_main(args: dict[str, Any]) -> None:
    """Entry point of a client process: print its result as one JSON line."""
    if args["target"] == "ours":
        result = send_ours(args["port"], args["first"], args["count"], args["batch"],
                           args["frames"])
    else:
        result = send_peer(args["port"], args["pid"], args["count"], args["seconds"],
                           args["frames"])
    print(json.dumps(result), flush=True)


def start_worker(python: str, args: dict[str, Any]) -> subprocess.Popen:
    """Run :func:`worker_main` in a new process of ``python``."""
    return subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=BENCH_DIR, env={k: v for k, v in os.environ.items()
                                                if k != "PYTHONPATH"})


def worker_result(worker: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """The JSON a client process printed (raises if it failed)."""
    out, err = worker.communicate(timeout=timeout)
    if worker.returncode != 0:
        raise RuntimeError(f"client process failed: {err[-2000:]}")
    return json.loads(out)


# -- samplers --------------------------------------------------------------------------------

@dataclass
class Samples:
    """What the sampling threads saw: (time, KiB) of RSS; (time, ms, processed, depth)."""

    rss: list[tuple[float, int]] = field(default_factory=list)
    health: list[tuple[float, float, int, int]] = field(default_factory=list)
    health_failures: int = 0
    peak_file_bytes: int = 0


class Sampler:
    """Samples a process's RSS (and the size of ``watched``, a file it writes) and,
    optionally, its /check_health, until stopped."""

    def __init__(self, pid: int, http_port: Optional[int], watched: Optional[Path] = None):
        self.pid = pid
        self.http_port = http_port
        self.watched = watched
        self.samples = Samples()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample_rss, daemon=True)]
        if http_port:
            self._threads.append(threading.Thread(target=self._sample_health, daemon=True))

    def __enter__(self) -> "Sampler":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            self.samples.rss.append((time.monotonic(), rss_kib(self.pid)))
            if self.watched is not None and self.watched.exists():
                self.samples.peak_file_bytes = max(self.samples.peak_file_bytes,
                                                   self.watched.stat().st_size)
            self._stop.wait(RSS_INTERVAL)

    def _sample_health(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        headers = {"Accept": "application/json"}
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("GET", "/check_health", headers=headers)
                answer = connection.getresponse()
                body = answer.read()
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status != 200:
                    raise ValueError(f"HTTP {answer.status}")
                status = json.loads(body)
                self.samples.health.append((time.monotonic(), elapsed,
                                            int(status.get("processed", 0)),
                                            int(status.get("inbox_depth", 0))))
            except (OSError, ValueError, http.client.HTTPException):
                self.samples.health_failures += 1
                connection.close()
            self._stop.wait(HEALTH_PAUSE)

    def latest_health(self) -> tuple[int, int]:
        """(processed, inbox depth) at the last health answer."""
        last = self.samples.health[-1] if self.samples.health else (0, 0, 0, 0)
        return last[2], last[3]


# -- the two sides -----------------------------------------------------------------------------

@dataclass
class Outcome:
    """One side's figures."""

    errors: int
    before_kib: int
    peak_kib: int
    after_kib: int
    send_seconds: float
    drain_seconds: float
    drained: bool = True
    health_sending_ms: list[float] = field(default_factory=list)
    health_draining_ms: list[float] = field(default_factory=list)
    health_failures: int = 0
    timeline: list[tuple[int, int]] = field(default_factory=list)  # (processed, KiB)
    database_bytes: int = 0
    peak_wal_bytes: int = 0
    stored_errors: int = 0
    refused: int = 0

    @property
    def growth_bytes_per_error(self) -> float:
        """RSS after minus before, in bytes, per distinct error stored."""
        return (self.after_kib - self.before_kib) * 1024 / max(1, self.stored_errors)


def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """RSS of ``pid`` after ``seconds`` of quiet (the lowest of a few samples)."""
    readings = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readings.append(rss_kib(pid))
        time.sleep(0.25)
    return min(readings)


def progress_printer(sampler: Sampler, total: int, label: str) -> Callable[[], None]:
    """A function printing one progress line (processed, inbox depth, RSS)."""
    def show() -> None:
        processed, depth = sampler.latest_health()
        rss = sampler.samples.rss[-1][1] if sampler.samples.rss else 0
        print(f"  [{label}] processed {processed:,}/{total:,}, inbox {depth:,}, "
              f"RSS {rss / 1024:,.1f} MiB", flush=True)
    return show


def rss_timeline(samples: Samples, total: int, points: int = 10) -> list[tuple[int, int]]:
    """RSS (KiB) when the processed count first reached each tenth of ``total``."""
    marks = [total * step // points for step in range(1, points + 1)]
    timeline: list[tuple[int, int]] = []
    for when, _, processed, _ in samples.health:
        while marks and processed >= marks[0]:
            near = [kib for at, kib in samples.rss if abs(at - when) <= RSS_INTERVAL]
            timeline.append((marks.pop(0), max(near) if near else 0))
    return timeline


def database_bytes(data_dir: Path) -> int:
    """Size of the (stopped, so checkpointed) server's SQLite database file."""
    return (data_dir / "flawless.sqlite3").stat().st_size


def stored_error_count(data_dir: Path) -> int:
    """How many distinct errors the (stopped) server stored."""
    with sqlite3.connect(f"file:{data_dir / 'flawless.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM errors").fetchone()[0])


def run_ours(errors: int, batch: int, processes: int, frames: int, budget: float,
             workdir: Path) -> Outcome:
    """Send ``errors`` distinct errors to our server and watch it until its inbox is drained
    (or ``budget`` seconds have passed)."""
    with OurServer(OURS_OPTIONS, workdir=workdir) as server:
        server.health()
        before = settle_rss(server.pid)
        with Sampler(server.pid, server.http_port,
                     server.data_dir / "flawless.sqlite3-wal") as sampler:
            show = progress_printer(sampler, errors, "ours")
            started = time.monotonic()
            share = -(-errors // processes)
            workers = [start_worker(sys.executable, {
                "target": "ours", "port": server.port, "first": number * share,
                "count": max(0, min(share, errors - number * share)), "batch": batch,
                "frames": frames}) for number in range(processes)]
            sent_at = drained_at = None
            next_show = started + 10
            while drained_at is None and time.monotonic() - started < budget:
                time.sleep(0.1)
                now = time.monotonic()
                if sent_at is None and all(worker.poll() is not None for worker in workers):
                    sent_at = now
                    print(f"  [ours] sent {errors:,} in {sent_at - started:.1f} s; draining",
                          flush=True)
                last = sampler.samples.health[-1] if sampler.samples.health else None
                if sent_at is not None and last is not None and last[0] > sent_at and \
                        last[3] == 0:
                    drained_at = last[0]
                if now >= next_show:
                    show()
                    next_show += 10
            show()
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
            results = [worker_result(worker, 60) for worker in workers]
        after = settle_rss(server.pid)
    samples = sampler.samples
    end = drained_at or time.monotonic()
    sending = [ms for at, ms, _, _ in samples.health if at <= (sent_at or end)]
    draining = [ms for at, ms, _, _ in samples.health if (sent_at or end) < at <= end]
    if drained_at is None:
        print(f"  [ours] NOT drained within the budget of {budget:.0f} s", flush=True)
    print(f"  [ours] largest request body {max(r['largest_body'] for r in results):,} bytes",
          flush=True)
    return Outcome(
        errors=errors, before_kib=before, peak_kib=max(kib for _, kib in samples.rss),
        after_kib=after, send_seconds=(sent_at or end) - started,
        drain_seconds=end - (sent_at or end), drained=drained_at is not None,
        health_sending_ms=sending, health_draining_ms=draining,
        health_failures=samples.health_failures, timeline=rss_timeline(samples, errors),
        database_bytes=database_bytes(server.data_dir),
        peak_wal_bytes=samples.peak_file_bytes,
        stored_errors=stored_error_count(server.data_dir),
        refused=sum(result["refused"] for result in results))


def peer_stored_errors(log_text: str) -> int:
    """Distinct errors the peer stored: it logs each new one it cannot blame (no repository)."""
    return log_text.count("Unable to do blame for")


def run_peer(errors: int, seconds: float, frames: int, workdir: Path) -> Outcome:
    """Send up to ``errors`` distinct errors to the original Flawless and watch its RSS."""
    from peer_flawless import PeerServer, peer_python

    options = {"report_runtime_package_directory_names": "app",
               "report_error_threshold": 1000000,
               "max_concurrent_git_blames": PEER_BATCH * 2}
    with PeerServer(options, workdir=workdir) as peer:
        before = settle_rss(peer.pid)
        with Sampler(peer.pid, None) as sampler:
            started = time.monotonic()
            worker = start_worker(str(peer_python()), {
                "target": "peer", "port": peer.port, "pid": peer.pid, "count": errors,
                "seconds": seconds, "frames": frames})
            result = worker_result(worker, seconds + 120)
            send_seconds = time.monotonic() - started
        after = settle_rss(peer.pid)
        peak = max(kib for _, kib in sampler.samples.rss)
        log_path = peer.workdir / "peer.log"
        stored = peer_stored_errors(log_path.read_text(errors="replace")
                                    if log_path.exists() else "")
    print(f"  [peer] sent {result['sent']:,} in {send_seconds:.1f} s; it stored {stored:,}",
          flush=True)
    return Outcome(errors=result["sent"], before_kib=before, peak_kib=peak, after_kib=after,
                   send_seconds=send_seconds, drain_seconds=0.0, stored_errors=stored)


# -- report --------------------------------------------------------------------------------------

def mib(kib: float) -> str:
    """KiB as MiB text."""
    return f"{kib / 1024:,.1f} MiB"


def health_row(name: str, values: Sequence[float]) -> list[object]:
    """One row of the health-latency table."""
    if not values:
        return [name, 0, "-", "-", "-", "-"]
    p99 = percentile(values, 0.99)
    return [name, f"{len(values):,}", f"{percentile(values, 0.5):.1f}", f"{p99:.1f}",
            f"{max(values):.1f}", "met" if p99 < HEALTH_TARGET_MS else "NOT met"]


def print_results(ours: Outcome, peer: Outcome) -> None:
    """The tables: memory, health latency, throughput; with the targets."""
    ours_growth, peer_growth = ours.growth_bytes_per_error, peer.growth_bytes_per_error
    half = [kib for processed, kib in ours.timeline if processed >= ours.errors // 2]
    second_half = (half[-1] - half[0]) * 1024 / max(1, ours.errors // 2) if len(half) > 1 else 0
    print_table("Memory (RSS of the server process)",
                ["", "distinct errors", "before", "peak", "after", "growth per error",
                 "growth per error, 2nd half"],
                [["ours", f"{ours.stored_errors:,}", mib(ours.before_kib), mib(ours.peak_kib),
                  mib(ours.after_kib), f"{ours_growth:,.1f} B", f"{second_half:,.1f} B"],
                 ["peer 0.4.5", f"{peer.stored_errors:,}", mib(peer.before_kib),
                  mib(peer.peak_kib), mib(peer.after_kib), f"{peer_growth:,.1f} B", "-"]])
    print_table("Our RSS as the errors are processed",
                ["processed", "RSS"], [[f"{n:,}", mib(kib)] for n, kib in ours.timeline])
    print_table(f"Our /check_health latency (ms; failures: {ours.health_failures})",
                ["while", "samples", "p50", "p99", "max", f"p99 < {HEALTH_TARGET_MS:.0f} ms"],
                [health_row("sending", ours.health_sending_ms),
                 health_row("draining", ours.health_draining_ms),
                 health_row("all", ours.health_sending_ms + ours.health_draining_ms)])
    processed_rate = ours.stored_errors / max(1e-9, ours.send_seconds + ours.drain_seconds)
    peer_rate = peer.stored_errors / max(1e-9, peer.send_seconds)
    print_table("Distinct errors: time and storage",
                ["", "errors", "sending (acknowledged/s)", "draining after",
                 "processed/s end to end", "database"],
                [["ours", f"{ours.errors:,}",
                  f"{ours.send_seconds:.1f} s ({ours.errors / ours.send_seconds:,.0f}/s)",
                  f"{ours.drain_seconds:.1f} s" + ("" if ours.drained else " (NOT drained)"),
                  f"{processed_rate:,.0f}/s",
                  f"{ours.database_bytes / 2**20:,.0f} MiB ("
                  f"{ours.database_bytes / max(1, ours.stored_errors):,.0f} B/error); "
                  f"WAL at most {ours.peak_wal_bytes / 2**20:,.0f} MiB"],
                 ["peer 0.4.5", f"{peer.errors:,}",
                  f"{peer.send_seconds:.1f} s ({peer.errors / peer.send_seconds:,.0f}/s)",
                  "-", f"{peer_rate:,.0f}/s", "none (in memory)"]])
    flat = second_half < FLAT_SHARE * peer_growth
    print(f"RSS growth per distinct error: ours {ours_growth:,.1f} B overall, "
          f"{second_half:,.1f} B over the second half; peer {peer_growth:,.1f} B (ratio "
          f"{ratio_text(max(ours_growth, 1.0), peer_growth, False)}); target flat (2nd half "
          f"under {FLAT_SHARE:.0%} of the peer's per error): {'met' if flat else 'NOT met'}")
    print(f"throughput ratio (processed/s): {ratio_text(processed_rate, peer_rate, True)}")
    if ours.refused or ours.stored_errors != ours.errors:
        print(f"WARNING: {ours.refused:,} reports refused; {ours.stored_errors:,} of "
              f"{ours.errors:,} errors stored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--errors", type=int, default=1000000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--peer-errors", type=int, default=100000)
    parser.add_argument("--peer-seconds", type=float, default=45.0)
    parser.add_argument("--budget", type=float, default=240.0,
                        help="seconds our side may take to send and drain before giving up")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    print(f"machine: {machine_line()}\nours: {args.errors:,} distinct errors, "
          f"{args.frames}-frame reports, batches of {args.batch}, {args.processes} client "
          f"processes\npeer: up to {args.peer_errors:,} errors or {args.peer_seconds:g} s",
          flush=True)
    # A million errors leave 1.5 GB of database behind: both sides work in one directory
    # that is removed at the end.
    workdir = Path(tempfile.mkdtemp(prefix="flawless-scale-"))
    try:
        ours = run_ours(args.errors, args.batch, args.processes, args.frames, args.budget,
                        workdir / "ours")
        peer = run_peer(args.peer_errors, args.peer_seconds, args.frames, workdir / "peer")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_results(ours, peer)


if __name__ == "__main__":
    sys.exit(main())
