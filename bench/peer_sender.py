"""Sends reports to the original Flawless with its generated Thrift client, one per line.

Usage: python peer_sender.py PORT   (run by the peer's virtualenv python)
Reads one JSON report per stdin line; sends it; prints the epoch time just before sending.
"""

import json
import sys
import time

from peer_thrift import connect, record_error_request


def main():
    _, client = connect(int(sys.argv[1]), timeout_ms=None)
    for line in sys.stdin:
        report = json.loads(line)
        request = record_error_request(report, additional_info=None, error_threshold=1,
                                       error_count=1)
        sent_at = time.time()
        client.record_error(request)
        print(sent_at, flush=True)


if __name__ == "__main__":
    main()
