"""Benchmark 9: does the right person get the mail, and what does finding them cost?

Run: python bench/routing.py   [--rounds N] [--per-round N] [--skip-cost]

1. Accuracy on our corpus (bench/routing_corpus.py: one repository, a case per directory,
   written, reformatted, renamed and moved by five people; the reports a program running its
   code at given revisions would send, chains of exceptions included; a fix commit with a
   ``Fixes:`` trailer and reports from before and after it). Each report goes to a real
   server over JSON-RPC and the mails a real SMTP server accepts are compared with the right
   recipients. Contestants: ours; ours with ``blame_detect_moves = false``; and the peer of
   issue 18, ``git blame`` of HEAD by line number (the innermost frame of the repository).
2. Cost of copy detection, as time to the inbox: the generated repository of benchmark 3
   (10,000 commits, 2,000 files) plus functions written by one author and moved to other
   files by another. Two servers, detection on and off, alternate rounds; each round sends
   new errors on ordinary lines (they pay one ``git diff-tree -S``) and on moved lines (they
   pay a second blame, with ``-M``/``-C``, of the function).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import http.client
import json
import os
import random
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aiosmtpd.controller import Controller

from gitgen import GeneratedRepo, generated_repo
from harness import (CACHE_DIR, OurServer, alternate, free_port, machine_line, percentile,
                     print_table)
from payloads import rpc_call
from routing_corpus import APP, Case, corpus_at

MOVES = 24                       # functions moved in the cost repository
MOVED_BODY = 10                  # lines of each moved function after its def
ORIGINAL = ("Olivia Original", "olivia@example.com")
MOVER = ("Max Mover", "max@example.com")


class Mails:
    """A real SMTP server on 127.0.0.1 keeping (accepted at, recipients, subject, text)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._raw: list[tuple[float, list[str], bytes]] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        """Note the time first: this is the moment the alert is in the inbox."""
        with self._lock:
            self._raw.append((time.time(), list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def __enter__(self) -> "Mails":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def since(self, moment: float, mark: str) -> list[tuple[float, frozenset[str]]]:
        """(accepted at, recipients) of the mails accepted after ``moment`` naming ``mark``
        in their subject."""
        with self._lock:
            raw = list(self._raw)
        found = []
        for accepted, recipients, content in raw:
            message = email.message_from_bytes(content, policy=email.policy.default)
            if accepted >= moment and mark in str(message["subject"]):
                found.append((accepted, frozenset(recipients)))
        return found

    def wait(self, moment: float, mark: str, timeout: float
             ) -> Optional[tuple[float, frozenset[str]]]:
        """The first mail naming ``mark`` accepted after ``moment``, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.since(moment, mark)
            if found:
                return found[0]
            time.sleep(0.002)
        return None


class Sender:
    """JSON-RPC calls to one server over a kept-open connection."""

    def __init__(self, server: OurServer):
        self.server = server
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.calls = 0

    def send(self, report: dict) -> float:
        """Send ``report``; return when it was sent."""
        self.calls += 1
        body = json.dumps(rpc_call(report, self.calls))
        for attempt in (1, 2):
            sent = time.time()
            try:
                self.connection.request("POST", "/rpc", body,
                                        {"Content-Type": "application/json"})
                answer = json.loads(self.connection.getresponse().read())
                break
            except (ConnectionError, http.client.HTTPException):
                # the server closed the kept-open connection while it was idle between rounds
                self.connection.close()
                if attempt == 2:
                    raise
        assert answer.get("result") == {"accepted": True}, answer
        return sent

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until nothing waits in the inbox or the outbox."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.server.health()
            if health["inbox_depth"] == 0 and health["outbox_depth"] == 0:
                return
            time.sleep(0.05)

    def query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(str(self.server.data_dir / "flawless.sqlite3"), timeout=10) as db:
            return db.execute(sql).fetchall()


# -- 1. accuracy ---------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one contestant did with one report."""

    right: bool
    got: frozenset[str]
    latency_ms: Optional[float] = None


def mark_of(case: Case) -> str:
    """What the subject of a mail about this case holds: its directory."""
    return f"({case.name.split()[0]}/"


def run_case(case: Case, sender: Sender, mails: Mails) -> list[Outcome]:
    outcomes = []
    for number, send in enumerate(case.sends):
        if number == 1 and case.fix_commit:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not sender.query(
                    f"SELECT 1 FROM error_resolutions WHERE fix_commit = '{case.fix_commit}' "
                    "AND resolved_at IS NOT NULL"):
                time.sleep(0.05)
        sent = sender.send(send.report)
        if send.expected:
            arrived = mails.wait(sent, mark_of(case), 15)
            time.sleep(0.2)
        else:
            arrived = None
            sender.settle()
            time.sleep(0.5)
        found = mails.since(sent, mark_of(case))
        got = frozenset().union(*(recipients for _, recipients in found))
        latency = (arrived[0] - sent) * 1000 if arrived else None
        outcomes.append(Outcome(got == send.expected, got, latency))
    return outcomes


def head_blame(repo: Path, report: dict) -> frozenset[str]:
    """The peer: git blame of HEAD at the innermost frame's line number."""
    tracked = set(subprocess.run(["git", "-C", str(repo), "ls-files"], check=True,
                                 capture_output=True, text=True).stdout.split())
    for frame in reversed(report["traceback"]):
        path = frame["filename"][len(APP) + 1:]
        if path in tracked:
            out = subprocess.run(["git", "-C", str(repo), "blame", "--porcelain", "-L",
                                  f"{frame['line_number']},+1", "HEAD", "--", path],
                                 capture_output=True, text=True)
            for row in out.stdout.splitlines():
                if row.startswith("author-mail "):
                    return frozenset([row.split(" ", 1)[1].strip("<>")])
            return frozenset()
    return frozenset(["nobody@example.com"])


def accuracy(mails: Mails) -> None:
    corpus = corpus_at(CACHE_DIR / "routing-corpus")
    print(f"corpus: {len(corpus.cases)} cases, "
          f"{sum(len(case.sends) for case in corpus.cases)} reports in {corpus.path}",
          flush=True)
    results: dict[str, list[list[Outcome]]] = {}
    for label, detect in (("ours", "true"), ("ours, no copy detection", "false")):
        options = {"repo_dir": corpus.path, "smtp_host": f"127.0.0.1:{mails.port}",
                   "report_error_threshold": 1, "default_contact": "nobody@example.com",
                   "rate_limit_per_address": 0, "rate_limit_per_key": 0,
                   "fixes_scan_interval_seconds": 0.2, "blame_detect_moves": detect}
        with OurServer(options) as server:
            sender = Sender(server)
            results[label] = [run_case(case, sender, mails) for case in corpus.cases]
    results["git blame HEAD by line"] = [
        [Outcome(head_blame(corpus.path, send.report) == send.expected,
                 head_blame(corpus.path, send.report)) for send in case.sends]
        for case in corpus.cases]
    labels = list(results)
    rows = []
    for index, case in enumerate(corpus.cases):
        expected = " then ".join(", ".join(sorted(send.expected)) or "(no mail)"
                                 for send in case.sends)
        rows.append([case.name, case.kind, expected] + [
            "right" if all(outcome.right for outcome in results[label][index]) else
            "WRONG: " + " then ".join(", ".join(sorted(outcome.got)) or "(no mail)"
                                      for outcome in results[label][index])
            for label in labels])
    print_table("Who got the mail, per case (a case is right when every report of it is)",
                ["case", "kind", "right recipients"] + labels, rows)
    totals = []
    for kind in ("ordinary", "hard"):
        chosen = [index for index, case in enumerate(corpus.cases)
                  if (case.kind == "ordinary") == (kind == "ordinary")]
        totals.append([f"{kind} cases"] + [
            f"{sum(all(o.right for o in results[label][i]) for i in chosen)} of {len(chosen)}"
            for label in labels])
    print_table("Cases routed right", ["cases"] + labels, totals)
    latencies = [outcome.latency_ms for case in results["ours"] for outcome in case
                 if outcome.latency_ms is not None]
    print(f"time to inbox on the corpus (ours): p50 {percentile(latencies, 0.5):.0f} ms, "
          f"max {max(latencies):.0f} ms", flush=True)


# -- 2. cost -------------------------------------------------------------------------------

def moved_function(number: int) -> list[str]:
    return [f"def moved_{number}(order, rates):\n"] + [
        f"    step_{line} = order.amount_{line} * rates[{number}] / order.count_{line}\n"
        for line in range(MOVED_BODY)]


def repository_with_moves(base: GeneratedRepo) -> tuple[Path, list[tuple[str, int, str, str]]]:
    """The generated repository plus MOVES functions written by ORIGINAL and moved to
    another file by MOVER; (path, line, function, text) of a line in each moved function."""
    path = CACHE_DIR / f"{base.path.name}-moves"
    rng = random.Random(5)
    pairs = [(base.files[rng.randrange(len(base.files))], base.files[rng.randrange(
        len(base.files))]) for _ in range(MOVES)]
    if not (path / ".bench-complete").exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)
        subprocess.run(["git", "clone", "-q", str(base.path), str(path)], check=True)

        def commit(author: tuple[str, str], message: str) -> None:
            env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
                   "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1]}
            subprocess.run(["git", "-C", str(path), "commit", "-qam", message], check=True,
                           env={**os.environ, **env})

        for number, (source, _) in enumerate(pairs):
            with open(path / source, "a") as handle:
                handle.write("\n\n" + "".join(moved_function(number)))
        commit(ORIGINAL, "Add the moved_* functions")
        for number, (source, target) in enumerate(pairs):
            text = (path / source).read_text().replace("\n\n" + "".join(moved_function(number)),
                                                       "")
            (path / source).write_text(text)
            with open(path / target, "a") as handle:
                handle.write("\n\n" + "".join(moved_function(number)))
        commit(MOVER, "Move the moved_* functions where they belong")
        (path / ".git" / "info" / "exclude").write_text(".bench-complete\n")
        (path / ".bench-complete").write_text("")
    samples = []
    for number, (_, target) in enumerate(pairs):
        lines = (path / target).read_text().splitlines()
        start = lines.index(moved_function(number)[0].rstrip("\n"))
        offset = 1 + number % MOVED_BODY
        samples.append((target, start + 1 + offset, f"moved_{number}",
                        lines[start + offset].strip()))
    return path, samples


def author_at_head(repo: Path, path: str, line: int) -> str:
    out = subprocess.run(["git", "-C", str(repo), "blame", "--porcelain", "-L", f"{line},+1",
                          "--", path], check=True, capture_output=True, text=True).stdout
    return next(row.split(" ", 1)[1].strip("<>") for row in out.splitlines()
                if row.startswith("author-mail "))


@dataclass
class Samples:
    latencies: list[float]
    right: int = 0
    total: int = 0


def cost(mails: Mails, rounds: int, per_round: int) -> None:
    base = generated_repo()
    repo, moved = repository_with_moves(base)
    rng = random.Random(11)
    used: set[tuple[str, int]] = set()
    serial = iter(range(1, 10**9))

    def ordinary_line() -> tuple[str, int, str, str]:
        while True:
            number = rng.randrange(len(base.files))
            path, line = base.files[number], rng.randint(1, base.line_counts[number])
            if (path, line) not in used:
                used.add((path, line))
                return path, line, "fail", ""

    figures = {(config, kind): Samples([]) for config in ("on", "off")
               for kind in ("ordinary", "moved")}
    common = {"repo_dir": repo, "smtp_host": f"127.0.0.1:{mails.port}",
              "report_error_threshold": 1, "default_contact": "nobody@example.com",
              "rate_limit_per_address": 0, "rate_limit_per_key": 0,
              # every sample's alert is measured: no hourly bound may hold one for a digest
              "mail_max_per_recipient_per_hour": 0, "mail_max_per_hour": 0}
    with OurServer({**common, "blame_detect_moves": "true"}) as on, \
            OurServer({**common, "blame_detect_moves": "false"}) as off:
        senders = {"on": Sender(on), "off": Sender(off)}
        moved_queue = {"on": list(moved), "off": list(moved)}

        def sample(config: str, kind: str, where: tuple[str, int, str, str]) -> None:
            path, line, function, text = where
            mark = f"m{next(serial)}x"
            expected = ORIGINAL[1] if kind == "moved" else author_at_head(repo, path, line)
            report = {"exception_type": "builtins.ValueError", "exception_message": mark,
                      "hostname": mark, "traceback": [
                          {"filename": f"{APP}/{path}", "line_number": line,
                           "function_name": function, "text": text}]}
            sent = senders[config].send(report)
            arrived = mails.wait(sent, f"on {mark}", 20)
            figure = figures[(config, kind)]
            figure.total += 1
            if arrived:
                figure.latencies.append((arrived[0] - sent) * 1000)
                figure.right += arrived[1] == frozenset([expected])

        def round_of(config: str) -> float:
            for _ in range(per_round):
                sample(config, "ordinary", ordinary_line())
                if moved_queue[config]:
                    sample(config, "moved", moved_queue[config].pop())
            latencies = figures[(config, "ordinary")].latencies
            return percentile(latencies, 0.5) if latencies else float("nan")

        print("new errors, ordinary lines (running median, ms):", flush=True)
        alternate(rounds, {"detection on": lambda: round_of("on"),
                           "detection off": lambda: round_of("off")})
    rows = []
    for kind in ("ordinary", "moved"):
        medians = {}
        for config in ("on", "off"):
            figure = figures[(config, kind)]
            lat = figure.latencies or [float("nan")]
            medians[config] = percentile(lat, 0.5)
            rows.append([kind, config, figure.total, f"{percentile(lat, 0.5):.1f} / "
                         f"{percentile(lat, 0.99):.1f}", f"{figure.right} of {figure.total}"])
        rows.append([kind, "on / off", "", f"{medians['on'] / medians['off']:.2f}x", ""])
    print_table("Time to the inbox with and without copy detection, ms (p50 / p99)",
                ["line", "detection", "samples", "time to inbox", "mailed to the right "
                 "person (moved: its original author)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=6)
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    with Mails() as mails:
        accuracy(mails)
        if not args.skip_cost:
            cost(mails, args.rounds, args.per_round)


if __name__ == "__main__":
    main()
