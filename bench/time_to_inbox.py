"""Benchmark 3: time from ``record_error`` to the alert accepted by a real SMTP server.

Run: python bench/time_to_inbox.py   [--rounds N] [--per-round N] [--repeats N]
                                     [--flood-rate N] [--flood-samples N]

On the generated repository (bench/gitgen.py: 10,000 commits, 2,000 files, up to 3,000
lines), each sample raises an error on a line no sample used before, calls
``flawless.client.record_error`` and waits until the loopback SMTP server (aiosmtpd) has
accepted the alert; the alert must go to the author ``git blame`` names for that line.
Repeats: one error listed in known_errors.yaml with ``alert_every_n_occurrences: 1``, so
every occurrence alerts, with its blame already cached; these are sent as JSON-RPC
requests straight from the benchmark, because the client itself forwards only the 1st,
2nd, 3rd, then power-of-two occurrences of an error from one process. Peer: the original Flawless
(same repository, same SMTP server), sent the same report over its Thrift API; it mails
an error once, so it has no repeat figure.

Under a flood: FLOOD_PROCESSES processes of this file (``--flood-worker``) send repeats of
FLOOD_LINES known errors (blamed and alerted once beforehand) in JSON-RPC batches of 100,
together at up to FLOOD_RATE reports a second, while new errors are measured as above: a
new error must not wait behind the repeats. Ours only (the peer mails an error once and
has no batch call); the rate the flood really reached is printed beside the figures.
"""

from __future__ import annotations

import argparse
import email
import http.client
import email.policy
import json
import random
import subprocess
import sys
import threading
import time
import itertools
from typing import Optional

from aiosmtpd.controller import Controller

from gitgen import generated_repo
from harness import (BENCH_DIR, OurServer, alternate, free_port, machine_line, percentile,
                     print_table, ratio_text)
from payloads import rpc_call
from peer_flawless import PeerServer, peer_python

APP_ROOT = "/srv/app/"
REPEAT_FILE = "shop/pkg_19/module_1999.py"
CALLER_FILE = "shop/pkg_18/module_1800.py"
FLOOD_FILE = "shop/pkg_17/module_1700.py"
FLOOD_LINES = 10
FLOOD_BATCH = 100
FLOOD_PROCESSES = 2


class ClockedSmtp:
    """A real SMTP server on 127.0.0.1 noting when it accepted each message."""

    def __init__(self) -> None:
        self.port = free_port()
        self._accepted: list[tuple[float, list[str], bytes]] = []
        self._parsed: list[tuple[float, list[str], str]] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        """Note the time first: this is the moment the alert is in the inbox."""
        accepted_at = time.time()
        with self._lock:
            self._accepted.append((accepted_at, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def __enter__(self) -> "ClockedSmtp":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def _parse_new(self) -> None:
        with self._lock:
            fresh, self._accepted = self._accepted, []
        for accepted_at, recipients, content in fresh:
            message = email.message_from_bytes(content, policy=email.policy.default)
            text = str(message["subject"]) + "".join(
                part.get_content() for part in message.walk()
                if part.get_content_maintype() == "text")
            self._parsed.append((accepted_at, recipients, text))

    def wait_for(self, mark: str, timeout: float) -> Optional[tuple[float, list[str]]]:
        """When the first message mentioning ``mark`` was accepted, and its recipients."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._parse_new()
            for accepted_at, recipients, text in self._parsed:
                if mark in text:
                    return accepted_at, recipients
            time.sleep(0.0005)
        return None


def blamed_author(repo_path, path: str, line: int) -> str:
    """The author email git blame names for ``path:line`` at HEAD."""
    out = subprocess.run(["git", "-C", str(repo_path), "blame", "--porcelain", "-L",
                          f"{line},+1", "--", path], check=True, capture_output=True, text=True)
    for row in out.stdout.splitlines():
        if row.startswith("author-mail "):
            return row.split(" ", 1)[1].strip("<>")
    raise RuntimeError(f"no author for {path}:{line}")


_MARKS = itertools.count(1)


def next_mark() -> str:
    """A word that names one sample in the alert, and that no scrubber takes for a secret."""
    return f"sample{next(_MARKS)}th"


def exc_info_at(path: str, line: int, mark: str):
    """exc_info of an error raised at ``path:line`` (called from CALLER_FILE line 10)."""
    inner = compile("\n" * (line - 1) + "def fail(mark): return int(mark)\n",
                    APP_ROOT + path, "exec")
    outer = compile("\n" * 9 + "def call(fail, mark): return fail(mark)\n",
                    APP_ROOT + CALLER_FILE, "exec")
    fail, call = _defined(inner, "fail"), _defined(outer, "call")
    try:
        call(fail, mark)
    except ValueError:
        return sys.exc_info()
    raise AssertionError("did not raise")


def _defined(code, name: str):
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - code made here, to get real frames at chosen lines
    return scope[name]


def wire_report(path: str, line: int, mark: str) -> dict:
    """The same error as a wire report (for the peer)."""
    return {"exception_type": "builtins.ValueError", "hostname": "bench-host",
            "exception_message": f"invalid literal for int() with base 10: '{mark}'",
            "traceback": [{"filename": APP_ROOT + CALLER_FILE, "line_number": 10,
                           "function_name": "call", "text": ""},
                          {"filename": APP_ROOT + path, "line_number": line,
                           "function_name": "fail", "text": ""}]}


class Samples:
    """Latencies in milliseconds, and alerts that reached someone else or nobody."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.wrong: int = 0
        self.missing: int = 0

    def note(self, sent_at: float, arrived: Optional[tuple[float, list[str]]], expected: str) -> None:
        """Record one sample."""
        if arrived is None:
            self.missing += 1
            return
        accepted_at, recipients = arrived
        if expected not in recipients:
            self.wrong += 1
        self.latencies.append((accepted_at - sent_at) * 1000)

    def median_ms(self) -> float:
        """Median latency so far."""
        return percentile(self.latencies, 0.5) if self.latencies else float("nan")


def flood_body() -> bytes:
    """One request of FLOOD_BATCH repeats of the FLOOD_LINES flood errors."""
    return json.dumps([rpc_call(wire_report(FLOOD_FILE, 1 + number % FLOOD_LINES, "flood"),
                                number) for number in range(FLOOD_BATCH)]).encode()


def flood_worker(port: int, rate: float, seconds: float) -> None:
    """Send flood requests at ``rate`` reports a second for ``seconds``; print what was
    acknowledged, and in how long, as one JSON line."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body, headers = flood_body(), {"Content-Type": "application/json"}
    started = time.monotonic()
    acknowledged = sent = 0
    interval = FLOOD_BATCH / rate
    while time.monotonic() - started < seconds:
        due = started + sent * interval
        sent += 1
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        connection.request("POST", "/rpc", body, headers)
        answer = connection.getresponse()
        results = json.loads(answer.read())
        acknowledged += sum(1 for result in results if result.get("result", {}).get("accepted"))
    print(json.dumps({"acknowledged": acknowledged, "seconds": time.monotonic() - started}))


def under_flood(port: int, rate: float, seconds: float, measure) -> float:
    """Run ``measure()`` while FLOOD_PROCESSES flood workers send; return the reports a
    second they had acknowledged together."""
    workers = [subprocess.Popen([sys.executable, __file__, "--flood-worker", str(port),
                                 str(rate / FLOOD_PROCESSES), str(seconds)],
                                stdout=subprocess.PIPE, text=True)
               for _ in range(FLOOD_PROCESSES)]
    try:
        time.sleep(1.0)  # the flood is under way
        measure()
    finally:
        results = [json.loads(worker.communicate(timeout=seconds + 60)[0]) for worker in workers]
    return sum(result["acknowledged"] / result["seconds"] for result in results)


def main() -> None:
    if sys.argv[1:2] == ["--flood-worker"]:
        flood_worker(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--flood-rate", type=float, default=20000)
    parser.add_argument("--flood-samples", type=int, default=60)
    args = parser.parse_args()
    repo = generated_repo()
    rng = random.Random(11)
    used: set[tuple[str, int]] = set()

    def fresh_line() -> tuple[str, int, str]:
        while True:
            number = rng.randrange(len(repo.files))
            path, line = repo.files[number], rng.randint(1, repo.line_counts[number])
            if path not in (REPEAT_FILE, CALLER_FILE, FLOOD_FILE) and (path, line) not in used:
                used.add((path, line))
                return path, line, blamed_author(repo.path, path, line)

    print(f"machine: {machine_line()}\nrepository: {repo.path}", flush=True)
    import flawless.client

    with ClockedSmtp() as smtp:
        # Latency is measured, so no hourly bound may hold an alert back for a digest.
        common = {"repo_dir": repo.path, "smtp_host": f"127.0.0.1:{smtp.port}",
                  "report_error_threshold": 1, "email_domain_name": "example.com",
                  "mail_max_per_recipient_per_hour": 0, "mail_max_per_hour": 0}
        ours_options = {**common, "default_contact": "nobody@example.com",
                        "rate_limit_per_address": 0, "rate_limit_per_key": 0}
        known = f"- filename: {REPEAT_FILE}\n  alert_every_n_occurrences: 1\n"
        peer_options = {**common, "report_runtime_package_directory_names": "app"}
        with OurServer(ours_options, rule_files={"known_errors.yaml": known}) as ours, \
                PeerServer(peer_options) as peer:
            flawless.client.set_hostports([f"127.0.0.1:{ours.port}"])
            sender = subprocess.Popen([str(peer_python()), str(BENCH_DIR / "peer_sender.py"),
                                       str(peer.port)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR)
            new = {"ours": Samples(), "peer": Samples()}

            def new_errors_to_ours(count: int, samples: Samples) -> None:
                for _ in range(count):
                    path, line, author = fresh_line()
                    mark = next_mark()
                    exc_info = exc_info_at(path, line, mark)
                    sent_at = time.time()
                    flawless.client.record_error("bench-host", exc_info)
                    samples.note(sent_at, smtp.wait_for(mark, 15), author)

            def ours_round() -> float:
                new_errors_to_ours(args.per_round, new["ours"])
                return new["ours"].median_ms()

            def peer_round() -> float:
                for _ in range(args.per_round):
                    path, line, author = fresh_line()
                    mark = next_mark()
                    sender.stdin.write(json.dumps(wire_report(path, line, mark)) + "\n")
                    sender.stdin.flush()
                    sent_at = float(sender.stdout.readline())
                    new["peer"].note(sent_at, smtp.wait_for(mark, 15), author)
                return new["peer"].median_ms()

            print("new errors (running median, ms):", flush=True)
            alternate(args.rounds, {"ours": ours_round, "peer": peer_round})
            sender.stdin.close()
            sender.wait(10)

            repeat = Samples()
            line = 42
            author = blamed_author(repo.path, REPEAT_FILE, line)
            connection = http.client.HTTPConnection("127.0.0.1", ours.port, timeout=10)
            for number in range(args.repeats + 5):
                mark = next_mark()
                body = json.dumps(rpc_call(wire_report(REPEAT_FILE, line, mark), number))
                sent_at = time.time()
                connection.request("POST", "/rpc", body, {"Content-Type": "application/json"})
                connection.getresponse().read()
                arrived = smtp.wait_for(mark, 10)
                if number >= 5:  # the first ones fill the blame cache
                    repeat.note(sent_at, arrived, author)

            # The flood's errors are blamed and alerted once before it starts.
            warm = http.client.HTTPConnection("127.0.0.1", ours.port, timeout=30)
            warm.request("POST", "/rpc", flood_body(), {"Content-Type": "application/json"})
            warm.getresponse().read()
            smtp.wait_for("flood", 30)
            time.sleep(1.0)
            flooded = Samples()
            flood_rate = under_flood(ours.port, args.flood_rate, 15 + args.flood_samples * 0.3,
                                     lambda: new_errors_to_ours(args.flood_samples, flooded))

    rows = []
    for label, ours_samples, peer_samples, target, p99_target in (
            ("new error", new["ours"], new["peer"], 40.0, None),
            ("repeat (cached blame)", repeat, None, 10.0, None),
            (f"new error, {flood_rate:,.0f} repeats/s pouring in", flooded, None, None, 200.0)):
        lat = ours_samples.latencies or [float("nan")]
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        goal = f"p50 < {target:g} ms: " + ("met" if p50 < target else "NOT met") \
            if target is not None else \
            f"p99 < {p99_target:g} ms: " + ("met" if p99 < p99_target else "NOT met")
        if peer_samples is not None and peer_samples.latencies:
            peer_p50 = percentile(peer_samples.latencies, 0.5)
            peer_p99 = percentile(peer_samples.latencies, 0.99)
            peer_text = f"{peer_p50:.1f} / {peer_p99:.1f}"
            times = ratio_text(p50, peer_p50, False)
            peer_bad = f"{peer_samples.wrong} / {peer_samples.missing}"
        else:
            peer_text, times, peer_bad = "n/a (mails an error once)", "n/a", "-"
        rows.append([label, len(ours_samples.latencies), f"{p50:.1f} / {p99:.1f}", peer_text,
                     times, f"{ours_samples.wrong} / {ours_samples.missing}", peer_bad,
                     goal])
    print_table("Time to the right inbox, ms (p50 / p99)",
                ["error", "samples", "ours", "peer 0.4.5", "ratio (p50)",
                 "ours wrong/missing", "peer wrong/missing", "target"], rows)


if __name__ == "__main__":
    main()
