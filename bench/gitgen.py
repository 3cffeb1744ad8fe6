"""A generated git repository of realistic size, built with ``git fast-import`` and cached.

Run alone to build it: python bench/gitgen.py   (prints where it is and how long it took)

Shape: COMMITS commits by AUTHORS authors over FILES Python files under ``shop/``; a few
files have MAX_LINES lines, most a few hundred; after the files are created, each commit
edits a few lines of one or two files, with a skew so that some files are touched often
(long blame histories) and most rarely. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import CACHE_DIR

COMMITS = 10_000
FILES = 2_000
MAX_LINES = 3_000
AUTHORS = 12
FILES_PER_CREATING_COMMIT = 10
START_EPOCH = 1_704_067_200  # 2024-01-01
SECONDS_BETWEEN_COMMITS = 900


@dataclass(frozen=True)
class GeneratedRepo:
    """Where the repository is and what it holds."""

    path: Path
    files: tuple[str, ...]       # repository-relative paths
    line_counts: tuple[int, ...]


def author(number: int) -> tuple[str, str]:
    """Name and email of author ``number``."""
    return f"Developer {number:02d}", f"dev{number:02d}@example.com"


def file_path(number: int) -> str:
    """Repository-relative path of file ``number``."""
    return f"shop/pkg_{number // 100:02d}/module_{number:04d}.py"


def line_counts(rng: random.Random) -> list[int]:
    """Lines per file: 1% at MAX_LINES, the rest spread between 40 and 900."""
    return [MAX_LINES if n % 100 == 7 else int(min(900, 40 + rng.expovariate(1 / 250)))
            for n in range(FILES)]


def source_line(file_number: int, line_number: int, revision: int) -> str:
    """One line of plausible Python, distinct per file, line and revision."""
    return (f"    total_{line_number} = price_{file_number}_{line_number}(item, qty)"
            f" + {revision}\n")


def _data(text: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(text), text)


def stream(rng: random.Random, counts: list[int]):
    """The fast-import commands, one commit at a time."""
    contents = [[source_line(f, n, 0) for n in range(1, count + 1)] for f, count in enumerate(counts)]
    hotness = [rng.paretovariate(1.2) for _ in range(FILES)]
    creating = FILES // FILES_PER_CREATING_COMMIT
    for commit in range(COMMITS):
        name, email = author(rng.randrange(AUTHORS))
        when = START_EPOCH + commit * SECONDS_BETWEEN_COMMITS
        if commit < creating:
            touched = range(commit * FILES_PER_CREATING_COMMIT,
                            (commit + 1) * FILES_PER_CREATING_COMMIT)
            message = f"Add modules {touched[0]}-{touched[-1]}"
        else:
            touched = sorted(set(rng.choices(range(FILES), weights=hotness, k=rng.choice((1, 1, 2)))))
            for f in touched:
                for _ in range(rng.randint(1, 6)):
                    line = rng.randrange(len(contents[f]))
                    contents[f][line] = source_line(f, line + 1, commit)
            message = f"Fix pricing in {', '.join(file_path(f) for f in touched)}"
        person = f"{name} <{email}> {when} +0000".encode()
        parts = [b"commit refs/heads/main\n", b"mark :%d\n" % (commit + 1),
                 b"author " + person + b"\n", b"committer " + person + b"\n",
                 _data(message.encode())]
        if commit:
            parts.append(b"from :%d\n" % commit)
        for f in touched:
            parts.append(b"M 100644 inline " + file_path(f).encode() + b"\n")
            parts.append(_data("".join(contents[f]).encode()))
        yield b"".join(parts)


def build(path: Path, seed: int) -> None:
    """Create the repository at ``path`` (which must not exist)."""
    path.mkdir(parents=True)
    git = ["git", "-C", str(path)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    importer = subprocess.Popen([*git, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    assert importer.stdin is not None
    rng = random.Random(seed)
    for chunk in stream(rng, line_counts(rng)):
        importer.stdin.write(chunk)
    importer.stdin.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")
    subprocess.run([*git, "checkout", "-q", "-f", "main"], check=True)


def generated_repo(seed: int = 7) -> GeneratedRepo:
    """The cached repository (built on first use, under bench/.cache/)."""
    path = CACHE_DIR / f"repo-{COMMITS}c-{FILES}f-{MAX_LINES}l-s{seed}"
    if not (path / ".bench-complete").exists():
        if path.exists():
            subprocess.run(["rm", "-rf", str(path)], check=True)
        started = time.monotonic()
        print(f"[setup] generating {COMMITS} commits over {FILES} files in {path}", flush=True)
        build(path, seed)
        (path / ".git" / "info" / "exclude").write_text(".bench-complete\n")
        (path / ".bench-complete").write_text("")
        print(f"[setup] generated in {time.monotonic() - started:.1f} s", flush=True)
    rng = random.Random(seed)
    return GeneratedRepo(path, tuple(file_path(n) for n in range(FILES)), tuple(line_counts(rng)))


if __name__ == "__main__":
    repo = generated_repo(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    print(repo.path)
