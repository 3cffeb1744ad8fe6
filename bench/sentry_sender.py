"""One sender of bench/sentry_ingest.py: the real sentry-sdk reporting errors by its DSN.

    python bench/sentry_sender.py DSN COUNT APP_DIR RELEASE SEED

First (untimed) the SDK captures COUNT exceptions raised in the generated application's
modules (APP_DIR), with their locals, into envelopes, exactly as ``capture_exception``
makes them. Prints ``ready`` and waits for a line on standard input; then the SDK's own
HTTP transport (``HttpTransport``: its background worker, its connection pool, its gzip)
sends every envelope and is flushed. Prints one JSON line: the statuses the server answered.
"""

from __future__ import annotations

import collections
import importlib
import json
import random
import sys
from typing import Any

import sentry_sdk
from sentry_sdk.transport import HttpTransport, Transport


class Recording(Transport):
    """Keeps the envelopes the SDK makes instead of sending them."""

    envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        Recording.envelopes.append(envelope)


class CountingTransport(HttpTransport):
    """The SDK's HTTP transport, counting the answers' statuses."""

    statuses: collections.Counter = collections.Counter()

    def _handle_response(self, response: Any, envelope: Any = None) -> None:
        CountingTransport.statuses[response.status] += 1
        super()._handle_response(response, envelope)


def main() -> None:
    dsn, count, app_dir, release, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        sys.argv[4], int(sys.argv[5])
    sys.path.insert(0, app_dir)
    sentry_sdk.init(dsn=dsn, release=release, server_name="bench", transport=Recording,
                    include_local_variables=True, default_integrations=False,
                    transport_queue_size=count + 100)
    chooser = random.Random(seed)
    sites = sorted(name[:-3] for name in __import__("os").listdir(f"{app_dir}/app")
                   if name.startswith("site_"))
    for _ in range(count):
        module = importlib.import_module(f"app.{chooser.choice(sites)}")
        try:
            module.handle({"price": chooser.randint(1, 99), "sku": "A-1"}, chooser.randint(1, 5))
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
    envelopes = list(Recording.envelopes)
    transport = CountingTransport({**sentry_sdk.get_client().options, "dsn": dsn})
    print("ready", flush=True)
    sys.stdin.readline()
    for envelope in envelopes:
        transport.capture_envelope(envelope)
    transport.flush(timeout=600)
    print(json.dumps({"envelopes": len(envelopes),
                      "statuses": dict(CountingTransport.statuses)}), flush=True)


if __name__ == "__main__":
    main()
