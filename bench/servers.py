"""Benchmark 12: one, two and three servers on one PostgreSQL database, against one server
on SQLite, in the same run.

Run: python bench/servers.py   [--reports N] [--distinct N] [--processes N] [--batch N]
                               [--rounds N] [--servers 1,2,3]

Workload (bench/processing.py's, without a repository: every report is counted and stored,
nothing is blamed): CLIENT processes send REPORTS reports of DISTINCT distinct errors in
batches of BATCH, as fast as they are acknowledged, spread over the servers (client n talks
to server n mod servers, as a load balancer would). "Acknowledged" is when the last answer
came; "fully processed" when, after it, the shared inbox is empty (read from one server's
health page every 50 ms, whatever the number of servers). PostgreSQL is Debian's server in
a throwaway cluster (tests/support/pgcluster.py) that syncs its commits as a real one does;
the contestants alternate over ROUNDS rounds (the order reversed every other round), each
on a new database. CPU is measured from /proc: every flawless server, and every PostgreSQL
process (the postmaster, its children alive and ended); reports per CPU-second counts both.
On a 2-core machine that also runs the clients, more servers show overhead rather than
scale: reports per CPU-second is what adding machines multiplies.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from harness import OurServer, machine_line, print_table
from processing import UNLIMITED, Run, workload

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.pgcluster import PostgresCluster, server_binaries  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children_too: bool = False) -> float:
    """CPU time of process ``pid`` (with its ended children's, when asked), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])          # utime, stime
    if children_too:
        ticks += int(fields[13]) + int(fields[14])     # cutime, cstime of ended children
    return ticks / TICKS


def postgres_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds of the whole PostgreSQL server: postmaster, children alive and ended."""
    postmaster, *children = cluster.server_pids()
    return cpu_seconds(postmaster, children_too=True) + sum(map(cpu_seconds, children))


def watch(server: OurServer, sending: threading.Event, give_up_at: float
          ) -> list[tuple[float, int]]:
    """(time, reports waiting) from one server's health page (the inbox is shared), every
    50 ms, until the clients are done and nothing waits."""
    samples: list[tuple[float, int]] = []
    while time.time() < give_up_at:
        try:
            samples.append((time.time(), server.health()["inbox_depth"]))
        except OSError:
            pass
        if not sending.is_set() and samples and samples[-1][1] == 0:
            break
        time.sleep(0.05)
    return samples


def measure(options: dict, servers: int, args: argparse.Namespace, files: tuple[Path, Path],
            other_cpu: Callable[[], float]) -> dict[str, float]:
    """One contestant's round: ``servers`` flawless servers with ``options``."""
    with ExitStack() as stack:
        ours = [stack.enter_context(OurServer({**UNLIMITED, **options}))
                for _ in range(servers)]
        run = Run("ours", [server.port for server in ours], args.reports, args.processes,
                  args.batch, files, python=sys.executable)
        cpu_before = sum(cpu_seconds(server.pid) for server in ours), other_cpu()
        sending, samples = threading.Event(), []
        sending.set()
        watcher = threading.Thread(target=lambda: samples.extend(watch(
            ours[0], sending, run.started_at + 1800)))
        watcher.start()
        marks = run.acknowledged()
        sending.clear()
        watcher.join()
        server_cpu = sum(cpu_seconds(server.pid) for server in ours) - cpu_before[0]
        database_cpu = other_cpu() - cpu_before[1]
    start, last_ack = run.started_at, marks[-1][0]
    # Every acknowledged report is in the inbox until the transaction that counts it: once
    # the last is acknowledged, an empty inbox means everything is processed.
    done = next((when for when, waiting in samples if when >= last_ack and waiting == 0),
                float("nan"))
    return {"acknowledged": run.total / (last_ack - start),
            "processed": run.total / (done - start),
            "server_cpu": server_cpu, "database_cpu": database_cpu,
            "per_cpu_second": run.total / (server_cpu + database_cpu)}


def median_figures(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds."""
    return {name: statistics.median(figures[name] for figures in rounds) for name in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=40_000)
    parser.add_argument("--distinct", type=int, default=2_000)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--servers", default="1,2,3")
    args = parser.parse_args()
    binaries = server_binaries()
    if binaries is None:
        sys.exit("PostgreSQL's server binaries are absent: apt-get install postgresql")
    counts = [int(count) for count in args.servers.split(",")]
    print(f"machine: {machine_line()}\n{args.processes} clients, batches of {args.batch}, "
          f"{args.reports:,} reports of {args.distinct:,} distinct errors, no repository, "
          f"{args.rounds} rounds", flush=True)
    cluster = PostgresCluster(binaries).start(durable=True)
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            errors, callers = workload(args.distinct, None)
            files = (Path(scratch) / "errors.json", Path(scratch) / "callers.json")
            files[0].write_text(json.dumps(errors))
            files[1].write_text(json.dumps(callers))
            contestants: dict[str, Callable[[], dict[str, float]]] = {
                "sqlite, 1 server": lambda: measure({}, 1, args, files, lambda: 0.0)}
            for count in counts:
                contestants[f"postgresql, {count} server{'s' * (count > 1)}"] = \
                    lambda count=count: measure(
                        {"storage": "postgresql", "database_url": cluster.create_database()},
                        count, args, files, lambda: postgres_cpu(cluster))
            names = list(contestants)
            for number in range(args.rounds):
                for name in names if number % 2 == 0 else names[::-1]:
                    figures = contestants[name]()
                    results.setdefault(name, []).append(figures)
                    print(f"  round {number + 1}/{args.rounds} {name}: "
                          + json.dumps({key: round(value, 1) for key, value in figures.items()}),
                          flush=True)
    finally:
        cluster.stop()
    medians = {name: median_figures(rounds) for name, rounds in results.items()}
    sqlite = medians["sqlite, 1 server"]
    print_table("Several servers on one PostgreSQL against one on SQLite (medians)",
                ["storage, servers", "acknowledged/s", "fully processed/s",
                 "processed vs SQLite", "CPU s: flawless + PostgreSQL", "reports per CPU-s",
                 "per CPU-s vs SQLite"],
                [[name, f"{figures['acknowledged']:,.0f}", f"{figures['processed']:,.0f}",
                  f"{figures['processed'] / sqlite['processed']:.2f}x",
                  f"{figures['server_cpu']:.1f} + {figures['database_cpu']:.1f}",
                  f"{figures['per_cpu_second']:,.0f}",
                  f"{figures['per_cpu_second'] / sqlite['per_cpu_second']:.2f}x"]
                 for name, figures in medians.items()])


if __name__ == "__main__":
    main()
