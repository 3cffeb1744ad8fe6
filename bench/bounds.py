"""Benchmark 8: what each bound against hostile clients costs ingest.

Run: python bench/bounds.py   [--rounds N] [--seconds S] [--processes P] [--in-process-only]

1. In process: the report port's request handling as the server builds it (twisted.web's
   parser, the connection bounds, the body checks, the JSON-RPC endpoint, the inbox with a
   storage that keeps nothing), driven over in-memory transports, one new connection and
   one single-report request at a time: the reactor's time per request with each bound
   on, against all of them off and against a plain twisted.web Site, in alternating rounds,
   medians. This is the CPU a bound adds, measured without the network and the disk.
2. End to end: our server started with every bound off ("none"), with one bound on at a
   time, and as shipped ("all"), each in its own process; the same ingest load against
   each, in alternating rounds (order reversed every other round), medians; each figure's
   ratio to "none" (1.00: the bound costs nothing). Three loads: one report a request on
   kept-open connections, one report a request on a new connection each (as
   flawless.client sends), and batches of 100. Every server's inbox is drained after each
   turn so its processing never runs during another's.

Rate limits are on with rates no client reaches, so their bookkeeping is measured, not
their refusals.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from harness import OurServer, alternate, machine_line, print_table, run_ingest_clients

KEY = "bench-key"
UNREACHED_RATE = 10**9
OFF = {"max_connections": 0, "max_connections_per_address": 0, "header_timeout_seconds": 0,
       "body_timeout_seconds": 0, "max_buffered_body_bytes": 0, "rate_limit_per_key": 0,
       "rate_limit_per_address": 0, "min_free_disk_bytes": 0}
CONFIGS = {
    "none": (OFF, None),
    "deadlines": ({**OFF, "header_timeout_seconds": 10, "body_timeout_seconds": 30}, None),
    "connection caps": ({**OFF, "max_connections": 1000, "max_connections_per_address": 64},
                        None),
    "body budget": ({**OFF, "max_buffered_body_bytes": 64 * 1024 * 1024}, None),
    "key before body": ({**OFF, "ingest_keys": KEY}, KEY),
    "rate limit": ({**OFF, "rate_limit_per_address": UNREACHED_RATE}, None),
    "disk reserve": ({**OFF, "min_free_disk_bytes": 64 * 1024 * 1024}, None),
    "all": ({"ingest_keys": KEY, "rate_limit_per_key": UNREACHED_RATE,
             "rate_limit_per_address": UNREACHED_RATE}, KEY),
}
LOADS = {"1 a request": (1, False), "1 a request, new connection": (1, True),
         "100 a request": (100, False)}


class _NullStorage:
    """An inbox that keeps nothing: the disk is not what is measured here."""

    def add_to_inbox(self, payloads: list, received_at: float) -> list[int]:
        return list(range(len(payloads)))


def _report_port(options: dict, key: object) -> Any:
    """The report port's Site as app.py builds it, over an inbox that keeps nothing."""
    from twisted.internet import reactor
    from twisted.web import resource, server

    from flawless.server.connections import (ConnectionBounds, GuardedSite,
                                             make_guarded_request)
    from flawless.server.core.admission import ByteBudget, TrustedProxies
    from flawless.server.ingest.gate import IngestGate
    from flawless.server.ingest.inbox import InboxWriter
    from flawless.server.ingest.keys import IngestKeys
    from flawless.server.ingest.ratelimit import TokenBuckets
    from flawless.server.ingest.rpc import RpcResource
    from flawless.server.threads import InlineRunner

    clock = reactor   # never run: its timers are only set and cancelled, as in the server
    keys, trusted = IngestKeys([key] if key else []), TrustedProxies()
    budget = options.get("max_buffered_body_bytes", 0)
    gate = IngestGate(InboxWriter(_NullStorage(), InlineRunner(), clock), keys, clock,
                      TokenBuckets(options.get("rate_limit_per_key", 0), UNREACHED_RATE),
                      TokenBuckets(options.get("rate_limit_per_address", 0), UNREACHED_RATE))
    rpc = RpcResource(gate, 1048576)
    root = resource.Resource()
    root.putChild(b"rpc", rpc)
    if options is PLAIN:
        site = server.Site(root, reactor=clock)
        return site
    site = GuardedSite(root, ConnectionBounds(
        options.get("max_connections", 0), options.get("max_connections_per_address", 0),
        options.get("header_timeout_seconds", 0), options.get("body_timeout_seconds", 0)),
        trusted, "rpc", clock)
    site.requestFactory = make_guarded_request(1048576, ByteBudget(budget, budget // 4),
                                               trusted, keys.authorized)
    return site


PLAIN: dict = {}
IN_PROCESS = {"plain twisted.web": (PLAIN, None),
              **{name: value for name, value in CONFIGS.items() if name != "disk reserve"}}


def reactor_microseconds(site: Any, raw: bytes, requests: int) -> float:
    """The reactor's CPU time per request: a new connection, one request, its answer."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    lost = Failure(ConnectionDone())
    # CPU time, not wall time: the other processes of a shared machine are not counted.
    started = time.process_time()
    for number in range(requests):
        address = IPv4Address("TCP", f"10.0.{number % 200}.{number % 250 + 1}", 40000)
        transport = StringTransport(peerAddress=address)
        channel = site.buildProtocol(address)
        channel.makeConnection(transport)
        channel.dataReceived(raw)
        if not transport.value().startswith(b"HTTP/1.1 200"):
            raise RuntimeError(transport.value()[:300])
        channel.connectionLost(lost)
    return (time.process_time() - started) / requests * 1e6


def in_process(rounds: int, requests: int) -> None:
    """Part 1: the reactor's time per request with each bound."""
    from payloads import make_report, rpc_call

    body = json.dumps(rpc_call(make_report(7, 50), 1)).encode()
    raw = {}
    for key in (None, KEY):
        head = ["POST /rpc HTTP/1.1", "Host: x", "Content-Type: application/json",
                f"Content-Length: {len(body)}"] + ([f"Authorization: Bearer {key}"]
                                                  if key else [])
        raw[key] = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    sites = {name: (_report_port(options, key), raw[key])
             for name, (options, key) in IN_PROCESS.items()}
    print(f"\nin process: {requests} requests a turn, one report each, a new connection "
          "each:", flush=True)
    figures = alternate(rounds, {name: (lambda site=site, request=request: reactor_microseconds(
        site, request, requests)) for name, (site, request) in sites.items()})
    none, plain = figures.median("none"), figures.median("plain twisted.web")
    print_table("The reactor's CPU time per request, median (against all bounds off; against a "
                "plain twisted.web Site)", ["bounds on", "us a request", "vs none", "vs plain"],
                [[name, f"{figures.median(name):.1f}",
                  f"{(figures.median(name) / none - 1) * 100:+.1f}%",
                  f"{(figures.median(name) / plain - 1) * 100:+.1f}%"] for name in sites])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000,
                        help="requests a turn in process")
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    in_process(args.rounds * 2 + 1, args.requests)
    if args.in_process_only:
        return
    print(f"\nend to end: {args.processes} client processes, {args.seconds:g} s a turn, "
          f"{args.rounds} rounds", flush=True)
    servers = {name: OurServer(options) for name, (options, _) in CONFIGS.items()}
    medians: dict[str, dict[str, float]] = {name: {} for name in CONFIGS}
    try:
        for server in servers.values():
            server.__enter__()
        for load, (batch, reconnect) in LOADS.items():
            print(f"\n{load}:", flush=True)
            idle = [lambda: [server.wait_idle(timeout=120) for server in servers.values()]]
            rounds = alternate(args.rounds, {
                name: (lambda server=servers[name], key=key: run_ingest_clients(
                    sys.executable, args.processes, args.seconds, target="ours",
                    port=server.port, batch=batch, key=key, reconnect=reconnect))
                for name, (_, key) in CONFIGS.items()}, rest=idle[0])
            for name in CONFIGS:
                medians[name][load] = rounds.median(name)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
    base = medians["none"]
    rows = [[name] + [f"{figures[load]:,.0f} ({figures[load] / base[load]:.2f})"
                      for load in LOADS] for name, figures in medians.items()]
    print_table("Ingest with each bound: reports acknowledged a second, median "
                "(ratio to none)", ["bounds on"] + list(LOADS), rows)


if __name__ == "__main__":
    sys.exit(main())
