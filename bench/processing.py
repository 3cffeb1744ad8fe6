"""Benchmark 5: reports fully processed (counted, blamed, alerted) per second, against how
fast they are acknowledged, with and without a repository to blame.

Run: python bench/processing.py   [--reports N] [--distinct N] [--processes N] [--batch N]

CLIENT processes send REPORTS reports of DISTINCT distinct errors (10 frames with locals,
batches of BATCH) as fast as the server acknowledges them. "Fully processed" is the moment
the last report is counted (health: nothing left in the inbox, every report processed),
measured inside the same window as the acknowledgements. Without a repository nothing is
blamed; with the generated repository (bench/gitgen.py: 10,000 commits, 2,000 files) every
distinct error is a real line of it, so DISTINCT errors cost DISTINCT blames. The peer, the
original Flawless (flawless==0.4.5), is sent the same workload (its frames under /srv/app
are in-app with report_runtime_package_directory_names=app, so it really stores them); it
processes each report before it answers, so its two figures are one.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from gitgen import FILES, generated_repo
from harness import (BENCH_DIR, OurServer, machine_line, percentile, print_table, ratio_text)
from peer_flawless import PeerServer, peer_python

UNLIMITED = {"rate_limit_per_address": 0, "rate_limit_per_key": 0}


def workload(distinct: int, repo_path: Optional[Path], seed: int = 5
             ) -> tuple[list[list], list[list]]:
    """[path, line, function, text] of each distinct error, and of the 9 outer frames."""
    rng = random.Random(seed)
    callers, errors = [], []
    if repo_path is None:
        callers = [[f"shop/views/step_{depth}.py", 10 + depth, f"step_{depth}",
                    f"return step_{depth + 1}(request)"] for depth in range(9)]
        errors = [[f"shop/module_{error % 500:04d}.py", 20 + error // 500, "price_items",
                   f"total_{error} = price_{error}(item, qty)"] for error in range(distinct)]
        return errors, callers
    repo = generated_repo()
    chosen = rng.sample(range(FILES), min(FILES, distinct + 9))
    lines_of: dict[str, list[str]] = {}

    def pick(number: int) -> list:
        path = repo.files[number]
        lines = lines_of.setdefault(path, (repo_path / path).read_text().splitlines())
        line = rng.randint(1, len(lines))
        return [path, line, f"price_{number}", lines[line - 1].strip()]

    callers = [pick(number) for number in chosen[:9]]
    for index in range(distinct):
        errors.append(pick(chosen[9 + index % (len(chosen) - 9)]))
    unique = {(path, line) for path, line, _, _ in errors}
    while len(unique) < len(errors):  # two errors on one line would be one error
        for index, (path, line, _, _) in enumerate(errors):
            errors[index] = pick(chosen[9 + rng.randrange(len(chosen) - 9)])
        unique = {(path, line) for path, line, _, _ in errors}
    return errors, callers


class Run:
    """One contestant's run: clients started together, acknowledgements and processing
    watched in the same window."""

    def __init__(self, target: str, port: int, reports: int, processes: int, batch: int,
                 files: tuple[Path, Path]):
        self.started_at = time.time() + 2.0 + reports / 20000  # the clients encode first
        share = reports // processes
        self.workers = [subprocess.Popen(
            [str(peer_python()), str(BENCH_DIR / "processing_worker.py"), json.dumps({
                "target": target, "port": port, "batch": batch, "first": number * share,
                "reports": share, "errors_file": str(files[0]), "callers_file": str(files[1]),
                "start_at": self.started_at})],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for number in range(processes)]
        self.total = share * processes

    def acknowledged(self) -> list[tuple[float, int]]:
        """(time, reports acknowledged by then) of every request of every client."""
        marks = []
        for worker in self.workers:
            out, err = worker.communicate(timeout=3600)
            if worker.returncode != 0:
                raise RuntimeError(f"client failed: {err[-2000:]}")
            marks += [tuple(mark) for mark in json.loads(out)["acknowledged"]]
        return sorted(marks)


def watch(ours: OurServer, total: int, stop: Callable[[], bool]) -> list[tuple[float, int, int]]:
    """Sample (time, processed, waiting) from the health page until ``total`` are processed."""
    samples = []
    base = ours.health().get("processed", 0)
    while not stop():
        try:
            health = ours.health()
        except OSError:
            time.sleep(0.05)
            continue
        samples.append((time.time(), health["processed"] - base, health["inbox_depth"]))
        if samples[-1][1] >= total and samples[-1][2] == 0:
            break
        time.sleep(0.05)
    return samples


def measure_ours(options: dict, reports: int, processes: int, batch: int,
                 files: tuple[Path, Path]) -> dict:
    with OurServer({**UNLIMITED, **options}) as ours:
        run = Run("ours", ours.port, reports, processes, batch, files)
        samples: list = []
        watcher = threading.Thread(target=lambda: samples.extend(watch(
            ours, run.total, lambda: time.time() > run.started_at + 1800)))
        watcher.start()
        marks = run.acknowledged()
        watcher.join()
    start, last_ack = run.started_at, marks[-1][0]
    done = next((when for when, processed, waiting in samples
                 if processed >= run.total and waiting == 0), float("nan"))
    # The lag of each acknowledged report until it was processed, from the two curves.
    lags = []
    for when, acked in marks[::max(1, len(marks) // 200)]:
        processed_at = next((at for at, processed, _ in samples if processed >= acked), None)
        if processed_at is not None:
            lags.append(max(0.0, processed_at - when))
    return {"acknowledged": run.total / (last_ack - start),
            "processed": run.total / (done - start), "drain": done - last_ack,
            "lag_p50": percentile(lags, 0.5) if lags else float("nan"),
            "peak_waiting": max((waiting for _, _, waiting in samples), default=0)}


def measure_peer(options: dict, reports: int, processes: int, batch: int,
                 files: tuple[Path, Path]) -> float:
    with PeerServer(options) as peer:
        run = Run("peer", peer.port, reports, processes, batch, files)
        marks = run.acknowledged()
    return run.total / (marks[-1][0] - run.started_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--peer-reports", type=int, default=20_000)
    parser.add_argument("--distinct", type=int, default=2_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--only", choices=("no-repo", "repo"), default=None)
    args = parser.parse_args()
    print(f"machine: {machine_line()}\n{args.processes} clients, batches of {args.batch}, "
          f"{args.reports:,} reports of {args.distinct:,} distinct errors "
          f"(peer: {args.peer_reports:,})", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for label in ("no-repo", "repo"):
            if args.only and args.only != label:
                continue
            repo = generated_repo().path if label == "repo" else None
            errors, callers = workload(args.distinct, repo)
            files = (Path(scratch) / f"{label}-errors.json", Path(scratch) / f"{label}-callers.json")
            files[0].write_text(json.dumps(errors))
            files[1].write_text(json.dumps(callers))
            options = {"repo_dir": repo} if repo else {}
            print(f"\n{label}: ours", flush=True)
            ours = measure_ours(options, args.reports, args.processes, args.batch, files)
            print(f"  {json.dumps({k: round(v, 2) for k, v in ours.items()})}", flush=True)
            print(f"{label}: peer", flush=True)
            peer_options = {"report_runtime_package_directory_names": "app",
                            **({"repo_dir": repo} if repo else {})}
            peer = measure_peer(peer_options, args.peer_reports, args.processes, args.batch,
                                files)
            print(f"  {peer:,.0f} reports/s", flush=True)
            rows.append([label, f"{ours['acknowledged']:,.0f}", f"{ours['processed']:,.0f}",
                         f"{ours['acknowledged'] / ours['processed']:.2f}x",
                         f"{ours['drain']:.1f} s", f"{ours['lag_p50']:.2f} s",
                         f"{ours['peak_waiting']:,}", f"{peer:,.0f}",
                         ratio_text(ours["processed"], peer, True)])
    print_table("Fully processed against acknowledged, reports/s",
                ["repository", "acknowledged", "fully processed", "ack/processed",
                 "drain after last ack", "lag p50", "peak waiting", "peer 0.4.5",
                 "ratio (processed)"], rows)


if __name__ == "__main__":
    main()
