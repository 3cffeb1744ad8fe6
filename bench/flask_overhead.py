"""Benchmark 6: what the Flask integration costs per request, ours against sentry-sdk's.

Run: python bench/flask_overhead.py   [--rounds N] [--batches N]

A Flask 3 app is called as a WSGI application in process (no HTTP: the figures are
microseconds, which network noise would swamp): per request when nothing fails
(``GET /ok``), and per captured error, one view failing again and again (``/fail``) or
views each failing from a file of their own (``/distinct/N``, every error new). Each figure
is the integration's time minus the same app's without it, in the same process. Ours and
the bare app alternate batch by batch in one process (``Flawless(app)`` touches only its
app) and the median difference of the pairs is taken; sentry-sdk patches every Flask app of
a process, so its bare app is measured before ``sentry_sdk.init`` in a process of its own.
Rounds alternate the two processes. Ours sends to a discarding JSON-RPC sink in another
process (its sender thread runs as in production; "CPU, all threads" includes it and a
flush); sentry-sdk gets a transport that drops every envelope, with its default
integrations (Flask's included) and local variables, as ``sentry_sdk.init(dsn)`` gives.
Last, ours alone: the per-request wrapper around a WSGI callable that does nothing.
First run creates bench/.peers/flask (flask, sentry-sdk).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from client_overhead import Sink
from harness import alternate, ensure_venv, machine_line, print_table, ratio_text, reexec_in

REQUIREMENTS = ("flask", "sentry-sdk")
SCENARIOS = ("ok", "fail", "distinct")
LABELS = {"ok": "request, nothing fails", "fail": "captured error, one view failing",
          "distinct": "captured error, every error new"}


def build_app(distinct: int):
    """The benchmark's Flask app: /ok, /fail (a view whose locals hold an order) and
    /distinct/N (N views, each raising from a file of its own)."""
    from flask import Flask

    app = Flask("bench_shop")
    app.logger.disabled = True  # Flask logs each 500 with its traceback: not what is measured

    @app.get("/ok")
    def ok():
        return "ok"

    @app.get("/fail")
    def fail():
        order = {"id": 7, "items": [1, 2, 3], "currency": "EUR"}
        return order["total"]

    raisers = []
    for index in range(distinct):
        scope: dict = {}
        exec(compile("def view(order):\n    return order['total']\n",  # noqa: S102
                     f"/srv/app/shop/views_{index}.py", "exec"), scope)
        raisers.append(scope["view"])

    @app.get("/distinct/<int:index>")
    def distinct_view(index):
        return raisers[index]({"id": index})

    return app


class Batches:
    """Batches of requests to one app; each call returns (wall, CPU) microseconds per
    request. ``/distinct`` paths are never reused, so every error is new."""

    def __init__(self, app, size: int) -> None:
        from werkzeug.test import EnvironBuilder

        self.app = app
        self.size = size
        self.next_view = 0
        self.environ = {path: EnvironBuilder(path=path).get_environ() for path in ("/ok", "/fail")}
        self.builder = EnvironBuilder

    def environs(self, scenario: str) -> list[dict]:
        if scenario != "distinct":
            return [dict(self.environ["/" + scenario]) for _ in range(self.size)]
        first, self.next_view = self.next_view, self.next_view + self.size
        return [self.builder(path=f"/distinct/{index}").get_environ()
                for index in range(first, self.next_view)]

    def run(self, scenario: str, after=lambda: None) -> tuple[float, float]:
        """Time one batch; ``after`` (a flush) counts in CPU time, not in wall time."""
        environs = self.environs(scenario)
        app = self.app

        def start_response(status, headers, exc_info=None):
            return None

        cpu = time.process_time()
        started = time.perf_counter()
        for environ in environs:
            response = app(environ, start_response)
            b"".join(response)
            response.close()
        wall = time.perf_counter() - started
        after()
        cpu = time.process_time() - cpu
        return wall / self.size * 1e6, cpu / self.size * 1e6


def medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return (statistics.median(wall for wall, _ in pairs),
            statistics.median(cpu for _, cpu in pairs))


def paired(runs: list[tuple[tuple[float, float], tuple[float, float]]]) -> tuple[float, float]:
    """The median difference between the batches of each pair (measured back to back, so
    the machine's load of the moment cancels out), wall and CPU."""
    return (statistics.median(ours[0] - bare[0] for bare, ours in runs),
            statistics.median(ours[1] - bare[1] for bare, ours in runs))


def worker(kind: str, batches: int, sizes: dict[str, int], sink_port: int) -> None:
    """Print, as JSON, per scenario: the wall and CPU microseconds per request of the bare
    app and of the app with ``kind``'s integration (medians over the batches; for ours, the
    bare figure plus the median difference of back-to-back pairs)."""
    views = batches * BATCHES["distinct"] * sizes["distinct"]  # each used once, per app
    bare, measured = Batches(build_app(views), 1), Batches(build_app(views), 1)
    figures: dict[str, dict[str, tuple[float, float]]] = {"bare": {}, kind: {}}
    if kind == "ours":
        import flawless.client
        from flawless.client.flask import Flawless

        flawless.client.install(hostports=[f"127.0.0.1:{sink_port}"], excepthook=False,
                                threads=False)
        Flawless(measured.app)
        flush = lambda: flawless.client.flush(30)  # noqa: E731 - the sender's share, in CPU
    for scenario in SCENARIOS:
        bare.size = measured.size = sizes[scenario]
        count = batches * BATCHES[scenario]
        if kind == "ours":  # interleaved in one process: paired batches
            runs = [(bare.run(scenario), measured.run(scenario, flush)) for _ in range(count)]
            figures["bare"][scenario] = base = medians([pair[0] for pair in runs])
            added = paired(runs)
            figures[kind][scenario] = (base[0] + added[0], base[1] + added[1])
        else:  # sentry-sdk patches every Flask app: before its init, then after
            figures["bare"][scenario] = medians([bare.run(scenario) for _ in range(count)])
    if kind == "sentry":
        import sentry_sdk
        from sentry_sdk.transport import Transport

        class DiscardTransport(Transport):
            def capture_envelope(self, envelope):  # noqa: D401 - sentry API
                """Drop it."""

        sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=DiscardTransport,
                        include_local_variables=True)
        for scenario in SCENARIOS:
            measured.size = sizes[scenario]
            figures[kind][scenario] = medians([measured.run(scenario)
                                               for _ in range(batches * BATCHES[scenario])])
    print(json.dumps(figures))


def run_worker(kind: str, args: argparse.Namespace, port: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--worker", kind, "--batches",
                             str(args.batches), "--sink-port", str(port)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


BATCH_SIZES = {"ok": 50, "fail": 20, "distinct": 20}
BATCHES = {"ok": 4, "fail": 1, "distinct": 1}  # times --batches


def wrapper_alone(calls: int = 200_000, repeats: int = 7) -> float:
    """Microseconds the integration's per-request wrapper adds around a WSGI callable that
    does nothing (the best of ``repeats``): all ours runs per request when nothing fails."""
    import timeit

    from flawless.client.flask import Flawless, _FreshScope

    def noop(environ, start_response):
        return ()

    wrapped = _FreshScope(noop, Flawless()._fresh_scope)
    environ: dict = {}
    bare = min(timeit.repeat(lambda: noop(environ, None), number=calls, repeat=repeats))
    ours = min(timeit.repeat(lambda: wrapped(environ, None), number=calls, repeat=repeats))
    return (ours - bare) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=40, help="batches per scenario")
    parser.add_argument("--worker", choices=("ours", "sentry"))
    parser.add_argument("--sink-port", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.batches, BATCH_SIZES, args.sink_port)
        return
    reexec_in(ensure_venv("flask", REQUIREMENTS))
    print(f"machine: {machine_line()}\nper process: "
          + ", ".join(f"{args.batches * BATCHES[s]} batches of {n} {s}"
                      for s, n in BATCH_SIZES.items()) + f" requests; {args.rounds} rounds",
          flush=True)
    added: dict[tuple[str, str], list[float]] = {}
    bare: dict[str, list[float]] = {}
    with Sink() as sink:
        def contestant(kind):
            def run() -> float:
                figures = run_worker(kind, args, sink.port)
                for scenario in SCENARIOS:
                    (bare_wall, bare_cpu), (wall, cpu) = (figures["bare"][scenario],
                                                          figures[kind][scenario])
                    added.setdefault((kind, scenario), []).append(wall - bare_wall)
                    added.setdefault((kind + " cpu", scenario), []).append(cpu - bare_cpu)
                    bare.setdefault(scenario, []).append(bare_wall)
                return figures[kind]["ok"][0] - figures["bare"]["ok"][0]
            return run

        alternate(args.rounds, {"ours": contestant("ours"), "sentry": contestant("sentry")})
    rows = []
    for scenario in SCENARIOS:
        ours, ours_cpu, peer = (statistics.median(added[key, scenario])
                                for key in ("ours", "ours cpu", "sentry"))
        target = ("met" if ours < 2 else "NOT met") if scenario == "ok" else ""
        rows.append([LABELS[scenario], f"{ours:.2f}", f"{ours_cpu:.2f}", f"{peer:.2f}",
                     f"{statistics.median(bare[scenario]):.1f}",
                     ratio_text(max(ours, 0.01), peer, False), target])
    print_table("Flask integration: microseconds added per request (median, bare app removed)",
                ["scenario", "ours (app thread)", "ours (CPU, all threads)", "sentry-sdk",
                 "bare Flask", "ratio", "target < 2 us"], rows)
    print(f"ours per request alone, around a WSGI callable that does nothing: "
          f"{wrapper_alone():.2f} us (best of 7 x 200,000 calls)")


if __name__ == "__main__":
    main()
