"""Benchmark 5: what each bound against hostile clients costs ingest.

Run: python bench/bounds.py   [--rounds N] [--seconds S] [--processes P]

Our server started with every bound off ("none"), with one bound on at a time, and as
shipped ("all"), each in its own process; the same ingest load against each, in
alternating rounds (order reversed every other round), medians; each figure's ratio to
"none" (1.00: the bound costs nothing). Three loads: one report a request on kept-open
connections, one report a request on a new connection each (as flawless.client sends),
and batches of 100. Rate limits are on with rates no client reaches, so their bookkeeping
is measured, not their refusals. Every server's inbox is drained after each turn so its
processing never runs during another's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from harness import BENCH_DIR, OurServer, alternate, machine_line, print_table

KEY = "bench-key"
UNREACHED_RATE = 10**9
OFF = {"max_connections": 0, "max_connections_per_address": 0, "header_timeout_seconds": 0,
       "body_timeout_seconds": 0, "max_buffered_body_bytes": 0, "rate_limit_per_key": 0,
       "rate_limit_per_address": 0, "min_free_disk_bytes": 0}
CONFIGS = {
    "none": (OFF, None),
    "deadlines": ({**OFF, "header_timeout_seconds": 10, "body_timeout_seconds": 30}, None),
    "connection caps": ({**OFF, "max_connections": 1000, "max_connections_per_address": 64},
                        None),
    "body budget": ({**OFF, "max_buffered_body_bytes": 64 * 1024 * 1024}, None),
    "key before body": ({**OFF, "ingest_keys": KEY}, KEY),
    "rate limit": ({**OFF, "rate_limit_per_address": UNREACHED_RATE}, None),
    "disk reserve": ({**OFF, "min_free_disk_bytes": 64 * 1024 * 1024}, None),
    "all": ({"ingest_keys": KEY, "rate_limit_per_key": UNREACHED_RATE,
             "rate_limit_per_address": UNREACHED_RATE}, KEY),
}
LOADS = {"1 a request": (1, False), "1 a request, new connection": (1, True),
         "100 a request": (100, False)}


def run_clients(port: int, batch: int, reconnect: bool, key: object, processes: int,
                seconds: float) -> float:
    """Reports a second acknowledged with ``processes`` clients sending at once."""
    start_at = time.time() + 1.0
    workers = [subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "ingest_worker.py"),
         json.dumps({"target": "ours", "port": port, "batch": batch, "seconds": seconds,
                     "start_at": start_at, "seed": number, "key": key,
                     "reconnect": reconnect})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for number in range(processes)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=seconds + 60)
        if worker.returncode != 0:
            raise RuntimeError(f"client failed: {err[-2000:]}")
        results.append(json.loads(out))
    return sum(r["acknowledged"] for r in results) / max(r["seconds"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {machine_line()}\nclients: {args.processes} processes, "
          f"{args.seconds:g} s a turn, {args.rounds} rounds", flush=True)
    servers = {name: OurServer(options) for name, (options, _) in CONFIGS.items()}
    medians: dict[str, dict[str, float]] = {name: {} for name in CONFIGS}
    try:
        for server in servers.values():
            server.__enter__()
        for load, (batch, reconnect) in LOADS.items():
            print(f"\n{load}:", flush=True)
            idle = [lambda: [server.wait_idle(timeout=120) for server in servers.values()]]
            rounds = alternate(args.rounds, {
                name: (lambda server=servers[name], key=key: run_clients(
                    server.port, batch, reconnect, key, args.processes, args.seconds))
                for name, (_, key) in CONFIGS.items()}, rest=idle[0])
            for name in CONFIGS:
                medians[name][load] = rounds.median(name)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
    base = medians["none"]
    rows = [[name] + [f"{figures[load]:,.0f} ({figures[load] / base[load]:.2f})"
                      for load in LOADS] for name, figures in medians.items()]
    print_table("Ingest with each bound: reports acknowledged a second, median "
                "(ratio to none)", ["bounds on"] + list(LOADS), rows)


if __name__ == "__main__":
    sys.exit(main())
