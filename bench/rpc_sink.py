"""A loopback JSON-RPC endpoint that accepts and discards every report (stdlib only).

Usage: python rpc_sink.py PORT_FILE   (writes the bound port to PORT_FILE, serves until killed)
Lets a client's sender thread run normally without a whole server on the CPU.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Discard(BaseHTTPRequestHandler):
    """Answers each record_error call with accepted, and ping with true."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            import gzip
            body = gzip.decompress(body)
        payload = json.loads(body)
        calls = payload if isinstance(payload, list) else [payload]
        answers = [{"jsonrpc": "2.0", "id": call.get("id"),
                    "result": True if call.get("method") == "ping" else {"accepted": True}}
                   for call in calls if "id" in call]
        data = json.dumps(answers if isinstance(payload, list) else answers[0]).encode() \
            if answers else b""
        self.send_response(200 if answers else 204)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        """Quiet."""


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    with open(sys.argv[1], "w") as handle:
        handle.write(str(server.server_address[1]))
    server.serve_forever()
