"""Profile our server while it acknowledges and processes the processing benchmark's load.

Run: python bench/profile_processing.py   [--reports N] [--repo] [--seconds S]

py-spy samples every thread of the server from the first request until SECONDS later, and
the heaviest functions are printed as by bench/profile_ingest.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from client_overhead import CLIENT_REQUIREMENTS
from gitgen import generated_repo
from harness import OurServer, ensure_venv
from processing import UNLIMITED, Run, workload
from profile_ingest import summarise


def main() -> None:
    python = ensure_venv("client", CLIENT_REQUIREMENTS, system_site_packages=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=40_000)
    parser.add_argument("--distinct", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repo", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="flawless-profile-"))
    repo = generated_repo().path if args.repo else None
    errors, callers = workload(args.distinct, repo)
    files = (scratch / "errors.json", scratch / "callers.json")
    files[0].write_text(json.dumps(errors))
    files[1].write_text(json.dumps(callers))
    raw = scratch / "stacks.txt"
    with OurServer({**UNLIMITED, **({"repo_dir": repo} if repo else {})}) as server:
        run = Run("ours", server.port, args.reports, 4, 100, files)
        spy = subprocess.Popen([str(python.parent / "py-spy"), "record", "--rate", "250",
                                "--format", "raw", "--nonblocking", "--duration",
                                str(int(args.seconds)), "--pid", str(server.pid),
                                "--output", str(raw)], stdout=subprocess.DEVNULL)
        run.acknowledged()
        spy.wait(args.seconds + 60)
        print(f"processed {server.health()['processed']} of {run.total} within the profile")
    summarise(raw, args.top)


if __name__ == "__main__":
    main()
