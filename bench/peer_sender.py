"""Sends reports to the original Flawless with its generated Thrift client, one per line.

Usage: python peer_sender.py PORT   (run by the peer's virtualenv python)
Reads one JSON report per stdin line; sends it; prints the epoch time just before sending.
"""

import json
import sys
import time

from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

from flawless.server.api import Flawless
from flawless.server.api.ttypes import RecordErrorRequest, StackLine


def main():
    transport = TTransport.TFramedTransport(TSocket.TSocket("127.0.0.1", int(sys.argv[1])))
    client = Flawless.Client(TBinaryProtocol.TBinaryProtocol(transport))
    transport.open()
    for line in sys.stdin:
        report = json.loads(line)
        request = RecordErrorRequest(
            traceback=[StackLine(**frame) for frame in report["traceback"]],
            exception_message=report["exception_message"], hostname=report["hostname"],
            exception_type=report["exception_type"], error_threshold=1, error_count=1)
        sent_at = time.time()
        client.record_error(request)
        print(sent_at, flush=True)


if __name__ == "__main__":
    main()
