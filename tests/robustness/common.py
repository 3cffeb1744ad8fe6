"""Shared pieces of the robustness suite: valid reports, raw HTTP from any loopback address,
and a load generator that runs as a separate process."""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping, Optional

from flawless.report import Frame, Report
from flawless.server.core.model import ErrorKey, ErrorRecord
from flawless.server.storage.interface import Storage
from support.server import FlawlessProcess

# Lines of the shop repository (tests/support/gitrepo.py): Alice wrote Cart.total,
# Bob wrote Cart.average.
ALICE_LINE = {"filename": "/srv/app/shop/cart.py", "line_number": 11, "function_name": "total",
              "text": "return sum(price for _, price in self.items)"}
BOB_LINE = {"filename": "/srv/app/shop/cart.py", "line_number": 14, "function_name": "average",
            "text": "return self.total() / len(self.items)"}


def report(frame: Optional[Mapping[str, Any]] = None, **fields: Any) -> dict[str, Any]:
    """A valid report blamed on Alice's line, with ``fields`` replacing its own."""
    return {"exception_type": "builtins.TypeError", "exception_message": "bad operand",
            "traceback": [dict(frame or ALICE_LINE)], "hostname": "web-1", **fields}


def rpc_body(method: str, params: Any = None, request_id: Any = 1) -> bytes:
    """One JSON-RPC request as bytes."""
    payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        payload["params"] = params
    return json.dumps(payload).encode()


def record_body(reports: list[dict[str, Any]]) -> bytes:
    """A batch of record_error calls, one per report."""
    return json.dumps([{"jsonrpc": "2.0", "method": "record_error", "id": index,
                        "params": {"report": item}} for index, item in enumerate(reports)]
                      ).encode()


def post_from(server: FlawlessProcess, body: bytes, source: str = "127.0.0.1",
              headers: Optional[Mapping[str, str]] = None
              ) -> tuple[int, dict[str, str], bytes]:
    """POST to /rpc from the loopback address ``source``; return (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                            source_address=(source, 0))
    try:
        connection.request("POST", "/rpc", body, {"Content-Type": "application/json",
                                                  **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_page(url: str, timeout: float = 30.0) -> tuple[int, str]:
    """GET a dashboard URL; return (status, text) whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def stored_total(server: FlawlessProcess) -> int:
    """Occurrences counted in the errors table."""
    return server.query("SELECT COALESCE(SUM(count), 0) FROM errors")[0][0]


# Runs as its own process: sends batches of reports to the server until its deadline,
# riding out refused connections (the server may be killed and restarted meanwhile), and
# prints how many occurrences of each function were acknowledged ("acked") and how many
# were sent without any answer coming back ("uncertain": stored or not, nobody knows).
LOADER = textwrap.dedent('''
    import http.client, json, random, sys, time
    port_file, seconds, functions, seed = sys.argv[1], float(sys.argv[2]), \\
        json.loads(sys.argv[3]), int(sys.argv[4])
    line, revision = json.loads(sys.argv[5]), sys.argv[6]
    rng = random.Random(seed)
    acked, uncertain, answers = {}, {}, {}
    deadline = time.monotonic() + seconds
    connection, port = None, None
    while time.monotonic() < deadline:
        try:
            info = json.load(open(port_file))
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        if info["port"] != port:
            port, connection = info["port"], None
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        batch = [rng.choice(functions) for _ in range(rng.randint(1, 20))]
        calls = [{"jsonrpc": "2.0", "method": "record_error", "id": index, "params": {
                  "report": {"exception_type": "builtins.TypeError",
                             "exception_message": "load", "hostname": "loader",
                             "revision": revision,
                             "traceback": [dict(line, function_name=name)]}}}
                 for index, name in enumerate(batch)]
        sent = False
        try:
            connection.request("POST", "/rpc", json.dumps(calls),
                               {"Content-Type": "application/json"})
            sent = True
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = None
            if sent:
                for name in batch:
                    uncertain[name] = uncertain.get(name, 0) + 1
            time.sleep(0.02)
            continue
        answers[response.status] = answers.get(response.status, 0) + 1
        if response.status != 200:
            time.sleep(0.05)
            continue
        for answer in json.loads(body):
            if answer.get("result") == {"accepted": True}:
                name = batch[answer["id"]]
                acked[name] = acked.get(name, 0) + 1
    print(json.dumps({"acked": acked, "uncertain": uncertain, "answers": answers}))
''')


def start_loaders(server: FlawlessProcess, count: int, seconds: float,
                  functions: list[str], revision: str) -> list[subprocess.Popen]:
    """Start ``count`` loader processes sending Alice's line under ``functions`` names, from
    a client running ``revision`` (as clients that set FLAWLESS_REVISION do)."""
    port_file = server.data_dir / "listening.json"
    return [subprocess.Popen([sys.executable, "-c", LOADER, str(port_file), str(seconds),
                              json.dumps(functions), str(seed), json.dumps(ALICE_LINE),
                              revision],
                             stdout=subprocess.PIPE, text=True)
            for seed in range(count)]


def loader_results(loaders: list[subprocess.Popen], timeout: float = 120.0
                   ) -> list[dict[str, Any]]:
    """Wait for the loaders; return each one's {"acked", "uncertain", "answers"}."""
    results = []
    for loader in loaders:
        out, _ = loader.communicate(timeout=timeout)
        assert loader.returncode == 0, out
        results.append(json.loads(out))
    return results


def summed(results: list[dict[str, Any]], field: str) -> dict[str, int]:
    """Per-function totals of one field over every loader."""
    totals: dict[str, int] = {}
    for result in results:
        for name, value in result[field].items():
            totals[name] = totals.get(name, 0) + value
    return totals


def sqlite_path(server: FlawlessProcess) -> Path:
    """The server's database file."""
    return server.data_dir / "flawless.sqlite3"


def errors_of_one_week(storage: Storage, count: int, when: float, developers: int = 10) -> None:
    """Store ``count`` distinct errors seen at ``when``, blamed on ``developers`` developers
    in turn (dev0@example.com, ...), as the processor stores them."""
    for start in range(0, count, 2000):
        with storage.transaction() as transaction:
            for number in range(start, min(count, start + 2000)):
                frame = Frame(f"/srv/app/gen/m{number}.py", 3, f"f{number}", "x = 1 / 0")
                author = f"dev{number % developers}@example.com"
                error_id = transaction.save_error(ErrorRecord(
                    0, ErrorKey(f"gen/m{number}.py", f"f{number}", "x = 1 / 0"), 3,
                    "builtins.ZeroDivisionError", True, f"Dev {number % developers}", author,
                    "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39", "Divide", when - 86400,
                    None, None, number % 7 + 1, when, when,
                    Report("builtins.ZeroDivisionError", "division by zero", (frame,)), False,
                    None, (), ("blamed",)))
                transaction.count_occurrences(error_id, when, number % 7 + 1)


def kill_repeatedly_under_load(server: FlawlessProcess, rounds: int, seed: int,
                               functions: list[str], revision: str
                               ) -> tuple[FlawlessProcess, list[dict[str, Any]]]:
    """While three loaders send ``functions`` for about 1.6 s a round, kill the server with
    SIGKILL at random moments (``rounds`` times at most) and start it again; return the
    server now running and the loaders' results."""
    rng = random.Random(seed)
    seconds = rounds * 1.6 + 2
    loaders = start_loaders(server, 3, seconds, functions, revision)
    deadline = time.monotonic() + seconds - 1.5
    try:
        for _ in range(rounds):
            if time.monotonic() > deadline:
                break
            time.sleep(rng.uniform(0.2, 1.0))
            server.kill()
            server = FlawlessProcess(server.config_path, server.data_dir).start()
        return server, loader_results(loaders)
    except BaseException:
        if server.process is not None and server.process.poll() is None:
            server.kill()
        raise
    finally:
        for loader in loaders:
            if loader.poll() is None:
                loader.kill()
