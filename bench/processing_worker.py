"""One client process of bench/processing.py: sends its share of the workload as fast as the
server acknowledges it, on one kept-open connection, and notes when each request was
acknowledged.

Usage: python processing_worker.py JSON_ARGS   (prints one JSON line)
JSON_ARGS: target ("ours" or "peer"), port, batch, reports (how many this worker sends),
first (its first serial), errors_file (JSON list of [path, line, function, text] per
distinct error), callers_file (the same for the 9 outer frames), start_at.
Standard library only (runs under the peer's virtualenv too).
"""

import http.client
import json
import sys
import time

from payloads import frame_locals, rpc_call

APP_ROOT = "/srv/app/"


def report(serial, errors, callers):
    """The report of occurrence ``serial``: 9 outer frames and the erroring one."""
    path, line, function, text = errors[serial % len(errors)]
    traceback = [{"filename": APP_ROOT + c_path, "line_number": c_line,
                  "function_name": c_function, "text": c_text,
                  "frame_locals": frame_locals(depth, serial)}
                 for depth, (c_path, c_line, c_function, c_text) in enumerate(callers)]
    traceback.append({"filename": APP_ROOT + path, "line_number": line,
                      "function_name": function, "text": text,
                      "frame_locals": frame_locals(9, serial)})
    return {"exception_type": "builtins.ValueError",
            "exception_message": f"invalid literal for int() with base 10: 'x{serial % 97}'",
            "traceback": traceback, "hostname": "web-3"}


def ours(port, batch, serials, errors, callers):
    """Send ``serials`` in requests of ``batch``; yield after each acknowledgement. The
    bodies are encoded before the start, so that the measured time is the server's."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    bodies = []
    for start in range(0, len(serials), batch):
        calls = [rpc_call(report(serial, errors, callers), n)
                 for n, serial in enumerate(serials[start:start + batch])]
        bodies.append((len(calls), json.dumps(calls if len(calls) > 1 else calls[0]).encode()))
    yield 0
    for count, body in bodies:
        while True:
            connection.request("POST", "/rpc", body, headers)
            answer = connection.getresponse()
            payload = answer.read()
            if answer.status == 200:
                break
            if answer.status not in (429, 503):
                raise RuntimeError(f"HTTP {answer.status}: {payload[:200]!r}")
            time.sleep(float(answer.getheader("Retry-After", "1")))
        yield count


def peer(port, batch, serials, errors, callers):
    """The same for the original Flawless: its Thrift client, ``batch`` calls pipelined."""
    from peer_thrift import connect, encoded_record_error as encoded

    sock, client = connect(port)
    bodies = [(len(serials[start:start + batch]),
               b"".join(encoded(report(serial, errors, callers))
                        for serial in serials[start:start + batch]))
              for start in range(0, len(serials), batch)]
    yield 0
    for count, body in bodies:
        sock.write(body)
        for _ in range(count):
            client.recv_record_error()
        yield count


def main():
    args = json.loads(sys.argv[1])
    with open(args["errors_file"]) as handle:
        errors = json.load(handle)
    with open(args["callers_file"]) as handle:
        callers = json.load(handle)
    serials = list(range(args["first"], args["first"] + args["reports"]))
    sender = (ours if args["target"] == "ours" else peer)(args["port"], args["batch"], serials,
                                                          errors, callers)
    next(sender)  # every body is encoded
    while time.time() < args["start_at"]:
        time.sleep(0.001)
    acknowledged = []  # (epoch seconds, reports acknowledged by then)
    total = 0
    for count in sender:
        total += count
        acknowledged.append((time.time(), total))
    print(json.dumps({"acknowledged": acknowledged}))


if __name__ == "__main__":
    main()
