"""Sentry SDK events: flawless against Bugsink, the same events from the same SDK in one run.

    python bench/sentry_ingest.py            # --rounds 3 --senders 4 --events 200

Each round, SENDERS processes of the real sentry-sdk (``bench/sentry_sender.py``) each
capture EVENTS exceptions raised in a generated application (20 functions in a git
repository with four authors, so that ours blames real lines), then send them with the
SDK's own HTTP transport, all at once, to one server. Two figures per server:

- acknowledged events/s: events over the time until every sender's transport is flushed
  (every envelope answered; ours answers once the report is durably stored);
- fully processed events/s: events over the time until the server has processed them all
  (ours: routed, blamed, counted, alerts rendered and queued, ``processed`` on
  /check_health; Bugsink: digested, ``digested_event_count``).

The two servers alternate (the order reversed every other round); each round starts once
the other server has finished processing. Per-client rate limits are off on ours; Bugsink's
quotas are raised (bench/bugsink.py). Prints medians and ratios; the goal is at least 20x
Bugsink's fully processed rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bugsink import BugsinkServer  # noqa: E402
from harness import (BENCH_DIR, OurServer, Rounds, ensure_venv, machine_line,  # noqa: E402
                     print_table, ratio_text)

SENTRY_SDK = "sentry-sdk==2.75.0"
KEY = "benchkey"
AUTHORS = [("Ann Author", "ann@example.com"), ("Bob Builder", "bob@example.com"),
           ("Cy Coder", "cy@example.com"), ("Di Dev", "di@example.com")]
SITE = '''\
def handle(order, quantity):
    total = order["price"] * quantity
    discount = {number} % 7
    return total / (quantity - quantity + discount - discount)
'''
SITES = 20


def git(directory: Path, *args: str, author: tuple[str, str] = AUTHORS[0]) -> str:
    env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
           "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1],
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(directory), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=directory, env=env, check=True,
                          capture_output=True, text=True).stdout


def make_app(directory: Path) -> str:
    """The generated application's repository; returns its head commit."""
    (directory / "app").mkdir(parents=True)
    git(directory, "init", "-q", "-b", "main")
    (directory / "app" / "__init__.py").write_text("")
    git(directory, "add", "app/__init__.py")
    for number in range(SITES):
        path = f"app/site_{number:02d}.py"
        (directory / path).write_text(SITE.format(number=number))
        git(directory, "add", path)
        git(directory, "commit", "-q", "-m", f"site {number}",
            author=AUTHORS[number % len(AUTHORS)])
    return git(directory, "rev-parse", "HEAD").strip()


def send_round(python: Path, dsn: str, senders: int, events: int, app: Path, release: str,
               processed: Callable[[], int], seed: int) -> tuple[float, float]:
    """(acknowledged/s, fully processed/s) of one round against one server."""
    start_count = processed()
    processes = [subprocess.Popen([str(python), str(BENCH_DIR / "sentry_sender.py"), dsn,
                                   str(events), str(app), release, str(seed + n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for n in range(senders)]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [json.loads(process.stdout.readline()) for process in processes]  # type: ignore
    acknowledged = time.monotonic() - started
    for process in processes:
        process.wait(60)
    total = sum(result["envelopes"] for result in results)
    refused = {status: count for result in results
               for status, count in result["statuses"].items() if status != "200"}
    if refused:
        raise RuntimeError(f"not every envelope was accepted: {refused}")
    deadline = time.monotonic() + 900
    while processed() - start_count < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {processed() - start_count} of {total} processed")
        time.sleep(0.02)
    finished = time.monotonic() - started
    return total / acknowledged, total / finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--events", type=int, default=200, help="events per sender")
    args = parser.parse_args()
    python = ensure_venv("sentry-sender", [SENTRY_SDK])
    work = Path(tempfile.mkdtemp(prefix="sentry-bench-"))
    app = work / "app-repo"
    release = make_app(app)
    ours_options = {"repo_dir": app, "rate_limit_per_key": 0, "rate_limit_per_address": 0,
                    "ingest_keys": KEY, "email_domain_name": "example.com",
                    "default_contact": "oncall@example.com", "report_error_threshold": 3}
    rounds = Rounds()
    with OurServer(ours_options, work / "ours") as ours, BugsinkServer(work / "bugsink") as peer:
        sides = {
            "ours": (f"http://{KEY}@127.0.0.1:{ours.port}/1",
                     lambda: int(ours.health()["processed"])),
            "Bugsink": (peer.dsn, peer.digested),
        }
        for number in range(args.rounds):
            order = list(sides) if number % 2 == 0 else list(sides)[::-1]
            for name in order:
                dsn, processed = sides[name]
                acked, full = send_round(python, dsn, args.senders, args.events, app,
                                         release, processed, seed=number * 100)
                rounds.add(f"{name} acknowledged", acked)
                rounds.add(f"{name} processed", full)
                print(f"  round {number + 1}/{args.rounds} {name}: {acked:,.0f} acknowledged/s, "
                      f"{full:,.0f} fully processed/s", flush=True)
    print(machine_line())
    print(f"{args.senders} senders x {args.events} events, {args.rounds} rounds (medians); "
          f"{SENTRY_SDK}, Bugsink from bench/bugsink.py")
    rows = []
    for figure, goal in (("acknowledged", ""), ("processed", "at least 20x")):
        mine, theirs = rounds.median(f"ours {figure}"), rounds.median(f"Bugsink {figure}")
        rows.append((f"{figure} events/s", f"{mine:,.0f}", f"{theirs:,.0f}",
                     ratio_text(mine, theirs, higher_is_better=True), goal))
    print_table("Sentry SDK events", ("", "ours", "Bugsink", "ratio", "goal"), rows)


if __name__ == "__main__":
    main()
