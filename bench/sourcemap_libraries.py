"""Which source-map library the server uses: symbolic (Sentry's, Rust) against ecma426 (pure
Python), on a real minified bundle's map.

    python bench/sourcemap_libraries.py [MAP]    # default: esbuild's map of @sentry/browser

Without MAP it bundles @sentry/browser (minified, with its source map) with the esbuild of
tests/browser_js (``npm ci`` there first). For each library, in a fresh process each round
(alternating): the time to read the map, the time of 1,000 lookups at random positions of
the bundle, and the memory the parsed map holds (RSS growth). Prints medians and ratios.
The server uses symbolic's SourceMapCache, which also reads the generated script to name
the original enclosing function of each position.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT, Rounds, machine_line, print_table  # noqa: E402

ESBUILD = REPO_ROOT / "tests" / "browser_js" / "node_modules" / ".bin" / "esbuild"
LOOKUPS = 1000
LIBRARIES = ["symbolic", "symbolic-cache", "ecma426"]

# Run in a fresh interpreter per library and round: prints {"load": s, "lookups": s, "rss": kB}.
_PROBE = r"""
import json, random, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
library, path, positions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if library == "symbolic":
    from symbolic.sourcemap import SourceMapView
    def load(data): return SourceMapView.from_json_bytes(data)
    def find(view, line, column): return view.lookup(line, column)
elif library == "symbolic-cache":
    # What the server uses: with the generated script, it also names enclosing functions.
    from symbolic.sourcemapcache import SourceMapCache
    script = open(path[:-len(".map")], "rb").read()
    def load(data): return SourceMapCache.from_bytes(script, data)
    def find(cache, line, column): return cache.lookup(line + 1, column + 1, 0)
else:
    import ecma426
    def load(data): return ecma426.loads(data)
    def find(index, line, column):
        try:
            return index.lookup_left(line, column)
        except IndexError:
            return None
data = open(path, "rb").read()
before = rss()
started = time.perf_counter()
parsed = load(data)
loaded = time.perf_counter() - started
held = rss() - before
started = time.perf_counter()
found = sum(find(parsed, line, column) is not None for line, column in positions)
looked = time.perf_counter() - started
print(json.dumps({"load": loaded, "lookups": looked, "rss": held, "found": found}))
"""


def build_default_map(directory: Path) -> Path:
    """esbuild's minified bundle of @sentry/browser, with its map; return the map's path."""
    if not ESBUILD.exists():
        sys.exit(f"{ESBUILD} is missing: run `npm ci` in tests/browser_js, or pass a MAP")
    entry = directory / "entry.js"
    entry.write_text('import * as Sentry from "@sentry/browser"; window.Sentry = Sentry;\n')
    subprocess.run([str(ESBUILD), str(entry), "--bundle", "--minify", "--sourcemap",
                    f"--outfile={directory / 'bundle.js'}", "--log-level=warning"],
                   check=True, env={**os.environ, "NODE_PATH": str(ESBUILD.parents[1])})
    return directory / "bundle.js.map"


def positions_in(bundle: Path, count: int) -> list[tuple[int, int]]:
    """Random call sites (0-based line and column of a "(") of the generated file: where a
    stack frame's position points."""
    calls = [(number, column) for number, line in enumerate(
        bundle.read_text(errors="replace").splitlines())
        for column, char in enumerate(line) if char == "("]
    return random.Random(7).sample(calls, min(count, len(calls)))


def probe(library: str, map_path: Path, positions: list[tuple[int, int]]) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, library, str(map_path),
                          json.dumps(positions)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("map", nargs="?", help="a source map (default: build one)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        map_path = Path(args.map) if args.map else build_default_map(Path(scratch))
        bundle = map_path.with_suffix("")
        positions = positions_in(bundle, LOOKUPS) if bundle.exists() else \
            [(0, column) for column in range(0, LOOKUPS * 50, 50)]
        size = map_path.stat().st_size
        rounds = Rounds()
        for number in range(args.rounds):
            order = LIBRARIES if number % 2 == 0 else LIBRARIES[::-1]
            for library in order:
                result = probe(library, map_path, positions)
                for name in ("load", "lookups", "rss"):
                    rounds.add(f"{library} {name}", result[name])
                rounds.add(f"{library} found", result["found"])
    print(machine_line())
    print(f"map: {size:,} bytes, {LOOKUPS} lookups, {args.rounds} rounds (medians)")
    rows = []
    for name, unit, scale in (("load", "ms", 1000), ("lookups", "us/lookup", 1e6 / LOOKUPS),
                              ("rss", "MiB", 1 / 1024)):
        figures = [rounds.median(f"{library} {name}") for library in LIBRARIES]
        rows.append((f"{name} ({unit})", *(f"{figure * scale:,.1f}" for figure in figures),
                     f"{figures[2] / figures[1]:.1f}x" if figures[1] else "-"))
    rows.append(("positions found", *(int(rounds.median(f"{library} found"))
                                      for library in LIBRARIES), ""))
    print_table("Source-map libraries", ("", "symbolic SourceMapView",
                                         "symbolic SourceMapCache (ours)", "ecma426",
                                         "ecma426 / ours"), rows)


if __name__ == "__main__":
    main()
