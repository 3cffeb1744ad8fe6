"""One ingest client process: sends pre-encoded reports on one kept-open connection.

Usage: python ingest_worker.py JSON_ARGS  (prints one JSON line: acknowledged, seconds)
JSON_ARGS: target ("ours" or "peer"), port, batch (reports per request), seconds,
start_at (epoch: every worker starts together), seed; for ours optionally key (sent as
Authorization: Bearer KEY) and reconnect (true: a new connection for every request, as
flawless.client does).
Runs under the peer's virtualenv python for both targets: ours needs only the stdlib.
"""

import http.client
import json
import sys
import time

from payloads import make_report, rpc_call

DISTINCT_ERRORS = 2000
BODIES = 16


def ours_sender(port, batch, seed, key=None, reconnect=False):
    """A function sending one request of ``batch`` reports; returns how many were accepted."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    bodies = []
    for body_number in range(BODIES):
        calls = [rpc_call(make_report(seed * 100000 + body_number * batch + n, DISTINCT_ERRORS), n)
                 for n in range(batch)]
        bodies.append(json.dumps(calls if batch > 1 else calls[0]).encode())
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    state = {"next": 0}

    def send():
        body = bodies[state["next"] % BODIES]
        state["next"] += 1
        if reconnect:
            connection.close()
        connection.request("POST", "/rpc", body, headers)
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}: {payload[:200]!r}")
        results = json.loads(payload)
        results = results if isinstance(results, list) else [results]
        return sum(1 for result in results if result.get("result", {}).get("accepted"))

    return send


def peer_sender(port, batch, seed):
    """The same for the peer: its generated Thrift client, framed binary protocol."""
    from peer_thrift import connect, encoded_record_error as encoded

    sock, client = connect(port)
    bodies = [b"".join(encoded(make_report(seed * 100000 + body_number * batch + n, DISTINCT_ERRORS))
                       for n in range(batch)) for body_number in range(BODIES)]
    state = {"next": 0}

    def send():
        # A batch for the peer is ``batch`` calls pipelined on the connection: its API has none.
        sock.write(bodies[state["next"] % BODIES])
        state["next"] += 1
        for _ in range(batch):
            client.recv_record_error()
        return batch

    return send


def main():
    args = json.loads(sys.argv[1])
    if args["target"] == "ours":
        send = ours_sender(args["port"], args["batch"], args["seed"], args.get("key"),
                           args.get("reconnect", False))
    else:
        send = peer_sender(args["port"], args["batch"], args["seed"])
    while time.time() < args["start_at"]:
        time.sleep(0.001)
    started = time.perf_counter()
    deadline = started + args["seconds"]
    acknowledged = 0
    while time.perf_counter() < deadline:
        acknowledged += send()
    print(json.dumps({"acknowledged": acknowledged, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
