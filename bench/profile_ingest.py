"""Profile our server under the ingest load: where does the time of every thread go?

Run: python bench/profile_ingest.py   [--batch 100] [--seconds 8] [--processes 4]

Starts our server, attaches py-spy to it (sampling every thread), drives it with the
ingest benchmark's clients, then prints the functions with the most samples, by own time
and including callees. py-spy lives in bench/.peers/client (installed on first use).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import tempfile
from pathlib import Path

from client_overhead import CLIENT_REQUIREMENTS
from harness import OurServer, ensure_venv
from ingest import UNLIMITED, run_clients



def summarise(raw: Path, top: int) -> None:
    """Print the heaviest frames of a py-spy ``raw`` (collapsed stacks) file."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    ours = collections.Counter({frame: count for frame, count in inclusive.items()
                                if "flawless/" in frame or "sqlite" in frame or "json/" in frame})
    for title, counter in (("own time", own), ("including callees", inclusive),
                           ("including callees, our code, json and sqlite only", ours)):
        print(f"\n== top {top} by {title} (of {total} samples, all threads) ==")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / total:5.1f}%  {frame}")


def main() -> None:
    python = ensure_venv("client", CLIENT_REQUIREMENTS, system_site_packages=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    raw = Path(tempfile.mkdtemp(prefix="flawless-profile-")) / "stacks.txt"
    with OurServer(UNLIMITED) as server:
        spy = subprocess.Popen([str(python.parent / "py-spy"), "record", "--rate", "250",
                                "--format", "raw", "--nonblocking", "--duration",
                                str(int(args.seconds)), "--pid", str(server.pid),
                                "--output", str(raw)], stdout=subprocess.DEVNULL)
        rate = run_clients("ours", server.port, args.batch, args.processes, args.seconds)
        spy.wait(60)
    print(f"{rate:,.0f} reports/s acknowledged while profiled (batch of {args.batch});"
          f" stacks in {raw}")
    summarise(raw, args.top)


if __name__ == "__main__":
    main()
