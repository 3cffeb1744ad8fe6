"""Benchmark 1: ingest throughput, ours against the original Flawless (flawless==0.4.5).

Run: python bench/ingest.py   [--rounds N] [--seconds S] [--processes P]

Several client processes, each on one kept-open connection, send reports as fast as the
server acknowledges them: single-report requests, then batches of 100 (for the peer, 100
calls pipelined on its connection, since its API has no batch). Ours answers only once a
report is committed to SQLite; the peer answers as soon as it has read the request.
Reports are of 2,000 distinct errors; ours processes them while it acknowledges (inside
the measured window), and between rounds whatever is left is drained so that it never
steals the peer's CPU; the drain time is printed too. The peer stores every report (its
frames under /srv/app are in-app with report_runtime_package_directory_names=app).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from harness import (OurServer, alternate, machine_line, print_table, ratio_text,
                     run_ingest_clients)
from peer_flawless import PeerServer, peer_python

# The benchmark measures capacity, so the per-client rate limits are switched off.
UNLIMITED = {"rate_limit_per_address": 0, "rate_limit_per_key": 0}
TARGETS = {1: ("at least 2x the peer", None), 100: ("at least 10x the peer", 20000.0)}


def run_clients(target: str, port: int, batch: int, processes: int, seconds: float) -> float:
    """Reports per second acknowledged by ``target`` with ``processes`` clients sending at once."""
    return run_ingest_clients(peer_python(), processes, seconds, target=target, port=port,
                              batch=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {machine_line()}\nclients: {args.processes} processes, "
          f"{args.seconds:g} s per round, {args.rounds} rounds alternating ours/peer", flush=True)
    rows = []
    # The peer's frames under /srv/app are in-app only with this option: without it, it
    # calls them bad file paths and stores nothing.
    with OurServer(UNLIMITED) as ours, \
            PeerServer({"report_runtime_package_directory_names": "app"}) as peer:
        drains: list[float] = []
        for batch in (1, 100):
            print(f"\nbatch of {batch}:", flush=True)
            rounds = alternate(args.rounds, {
                "ours": lambda: run_clients("ours", ours.port, batch, args.processes, args.seconds),
                "peer": lambda: run_clients("peer", peer.port, batch, args.processes, args.seconds),
            }, rest=lambda: drains.append(ours.wait_idle(timeout=120)))
            wanted, floor = TARGETS[batch]
            ours_rate, peer_rate = rounds.median("ours"), rounds.median("peer")
            met = ours_rate >= peer_rate * (10 if batch == 100 else 2) and \
                (floor is None or ours_rate >= floor)
            rows.append([f"{batch} per request", f"{ours_rate:,.0f}", f"{peer_rate:,.0f}",
                         ratio_text(ours_rate, peer_rate, True),
                         wanted + (f", >= {floor:,.0f}/s" if floor else ""),
                         "met" if met else "NOT met"])
        health = ours.health()
    print_table("Ingest: reports acknowledged per second (median of rounds)",
                ["requests", "ours", "peer 0.4.5", "ratio", "target", "status"], rows)
    print(f"our background processing: median {statistics.median(drains):.2f} s to drain the "
          f"inbox after a round; processed {health.get('processed')} reports in all")


if __name__ == "__main__":
    sys.exit(main())
