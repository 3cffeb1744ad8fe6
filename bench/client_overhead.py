"""Benchmark 2: client overhead per captured exception, ours against sentry_sdk.

Run: python bench/client_overhead.py   [--rounds N] [--captures N]

Each capture is an exception raised through a 10-frame stack whose frames hold locals.
Figures are microseconds on the application's thread per capture, minus the cost of the
bare raise-and-catch (printed as the baseline). Peer: ``sentry_sdk.capture_exception``
(and a try/except wrapper around it for the decorator case) with a transport that
discards. Ours sends to a loopback sink in another process, so its sender thread runs as
in production; the process CPU per capture, sender thread included, is printed as well.
First run creates bench/.peers/client (sentry-sdk) with the system packages visible.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (BENCH_DIR, alternate, ensure_venv, machine_line, print_table, ratio_text,
                     reexec_in)

# py-spy is for bench/profile_ingest.py, which shares this virtualenv.
CLIENT_REQUIREMENTS = ("sentry-sdk", "pyinstrument", "py-spy")
STACK_DEPTH = 9  # frames below the one that catches: 10 frames in every traceback


def descend(depth: int, serial: int, fail=None) -> int:
    """Recurse ``depth`` frames holding a few locals each, then raise (through ``fail``,
    a function of another file, when given)."""
    order = {"id": serial, "items": [depth, depth + 1, depth + 2], "currency": "EUR"}
    label = f"level {depth}"
    total = depth * 3.5
    if depth == 0:
        if fail is not None:
            fail(order, label, total)
        raise ValueError(f"cannot price order {order['id']} at {label}: {total}")
    return descend(depth - 1, serial, fail) + len(label)


_GENERATED = itertools.count()


def distinct_raisers(count: int) -> list:
    """``count`` functions raising from files never used before, so that no capture is a
    repeat of another (a client that aggregates repeats must capture each in full)."""
    raisers = []
    for _ in range(count):
        scope: dict = {}
        exec(compile("def fail(order, label, total):\n"  # noqa: S102 - code made here
                     "    raise ValueError(f'cannot price {order} at {label}: {total}')\n",
                     f"/srv/app/shop/generated_{next(_GENERATED)}.py", "exec"), scope)
        raisers.append(scope["fail"])
    return raisers


def distinct_loop(record, captures: int) -> float:
    """Like capture_loop, but every capture is a distinct error."""
    raisers = distinct_raisers(captures)
    started = time.perf_counter()
    for serial, fail in enumerate(raisers):
        try:
            descend(STACK_DEPTH - 2, serial, fail)
        except ValueError:
            record(sys.exc_info())
    return (time.perf_counter() - started) / captures * 1e6


def capture_loop(record, captures: int) -> float:
    """Microseconds per iteration of raise-through-10-frames, catch, ``record(exc_info)``."""
    started = time.perf_counter()
    for serial in range(captures):
        try:
            descend(STACK_DEPTH - 1, serial)
        except ValueError:
            record(sys.exc_info())
    return (time.perf_counter() - started) / captures * 1e6


def decorated_loop(function, captures: int) -> float:
    """Microseconds per call of ``function`` (a decorated raiser that swallows its error)."""
    started = time.perf_counter()
    for serial in range(captures):
        function(serial)
    return (time.perf_counter() - started) / captures * 1e6


class Sink:
    """``rpc_sink.py`` in its own process."""

    def __enter__(self) -> "Sink":
        port_file = Path(tempfile.mkdtemp(prefix="flawless-sink-")) / "port"
        self.process = subprocess.Popen([sys.executable, str(BENCH_DIR / "rpc_sink.py"),
                                         str(port_file)])
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("sink did not start")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


def setup_sentry():
    """sentry_sdk initialised with a transport that drops every envelope; its two contestants."""
    import sentry_sdk
    from sentry_sdk.transport import Transport

    class DiscardTransport(Transport):
        def capture_envelope(self, envelope):  # noqa: D401 - sentry API
            """Drop it."""

    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=DiscardTransport,
                    include_local_variables=True)

    def record(exc_info):
        sentry_sdk.capture_exception(exc_info)

    def wrapped(serial):
        try:
            return descend(STACK_DEPTH - 2, serial)
        except Exception:
            sentry_sdk.capture_exception()
            return None

    return record, wrapped


def setup_ours(port: int, captures: int):
    """flawless.client pointed at the sink, with a queue holding a whole round (a dropped
    capture would cost less than a sent one: the run counts drops and refuses any); its
    two contestants and its flush."""
    import flawless.client
    from flawless.client.decorators import wrap_function
    from flawless.client.transport import TransportOptions

    flawless.client.install(hostports=[f"127.0.0.1:{port}"], excepthook=False, threads=False,
                            transport=TransportOptions(queue_size=captures + 100))

    def record(exc_info):
        flawless.client.record_error("bench-host", exc_info)

    @wrap_function(reraise_exception=False)
    def wrapped(serial):
        return descend(STACK_DEPTH - 2, serial)

    flush = getattr(flawless.client, "flush", lambda *args, **kwargs: None)
    return record, wrapped, flush


def main() -> None:
    reexec_in(ensure_venv("client", CLIENT_REQUIREMENTS, system_site_packages=True))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--captures", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {machine_line()}\n{args.captures} captures per round, {args.rounds} rounds",
          flush=True)
    sentry_record, sentry_wrapped = setup_sentry()

    def bare(serial):
        try:
            return descend(STACK_DEPTH - 2, serial)
        except Exception:
            return None

    import flawless.client

    with Sink() as sink:
        ours_record, ours_wrapped, flush = setup_ours(sink.port, args.captures)
        cpu: dict[str, list[float]] = {"record": [], "decorator": [], "distinct": []}

        def ours_with_cpu(kind, run):
            def measured():
                cpu_before = time.process_time()
                figure = run()
                flush(10)
                cpu[kind].append((time.process_time() - cpu_before) / args.captures * 1e6)
                dropped = {name: count for name, count in flawless.client.stats().items()
                           if name.startswith("dropped") and count}
                if dropped:
                    raise SystemExit(f"the client dropped captures, the figure would flatter "
                                     f"it: {dropped}")
                return figure
            return measured

        n = args.captures
        print("record_error vs capture_exception:", flush=True)
        record_rounds = alternate(args.rounds, {
            "baseline": lambda: capture_loop(lambda exc_info: None, n),
            "ours": ours_with_cpu("record", lambda: capture_loop(ours_record, n)),
            "sentry": lambda: capture_loop(sentry_record, n)})
        print("decorator vs try/except + capture_exception:", flush=True)
        wrapped_rounds = alternate(args.rounds, {
            "baseline": lambda: decorated_loop(bare, n),
            "ours": ours_with_cpu("decorator", lambda: decorated_loop(ours_wrapped, n)),
            "sentry": lambda: decorated_loop(sentry_wrapped, n)})
        # Last: the sender thread's backlog of distinct errors must not weigh on the others.
        print("record_error vs capture_exception, every error distinct:", flush=True)
        distinct_rounds = alternate(args.rounds, {
            "baseline": lambda: distinct_loop(lambda exc_info: None, n),
            "ours": ours_with_cpu("distinct", lambda: distinct_loop(ours_record, n)),
            "sentry": lambda: distinct_loop(sentry_record, n)})
    rows = []
    for label, rounds, kind in (("record_error", record_rounds, "record"),
                                ("record_error, distinct", distinct_rounds, "distinct"),
                                ("decorator", wrapped_rounds, "decorator")):
        base = rounds.median("baseline")
        ours = rounds.median("ours") - base
        peer = rounds.median("sentry") - base
        times = peer / ours if ours > 0 else float("inf")
        cpu_total = sorted(cpu[kind])[len(cpu[kind]) // 2] - base
        rows.append([label, f"{ours:.1f}", f"{cpu_total:.1f}", f"{peer:.1f}", f"{base:.1f}",
                     ratio_text(ours, peer, False), "met" if times >= 20 else "NOT met"])
    print_table("Client overhead: microseconds per captured exception (median, baseline removed)",
                ["capture", "ours (app thread)", "ours (all threads, CPU)", "sentry_sdk",
                 "baseline raise", "ratio", "target 20x"], rows)


if __name__ == "__main__":
    main()
