"""Browser pages' way in: ``GET /flawless.js`` (the client) and ``POST /browser?key=KEY``.

A page's report is refused unless its origin is in ``allowed_origins`` (CORS, answered with
``Vary: Origin``); the key, visible in the page, must be an ingest key when keys are set,
and each key and address has its rate limit. The report (``core/browser.py``) is scrubbed
like the Python client's, validated by ``flawless.report`` and stored like any other.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from twisted.web import resource, server

from flawless.client.scrub import Scrubber
from flawless.report import InvalidReport, parse_report
from flawless.server.core.browser import browser_report
from flawless.server.ingest.cors import Cors
from flawless.server.ingest.gate import IngestGate, inbox_payload
from flawless.server.ingest.http import Refused, bounded_body
from flawless.server.ingest.ratelimit import retry_after_header

MAX_BROWSER_BODY_BYTES = 256 * 1024
SCRIPT_MAX_AGE_SECONDS = 300


def client_script() -> bytes:
    """The browser client, as shipped in this package."""
    return resources.files("flawless.server.ingest").joinpath("flawless.js").read_bytes()


class ClientScript(resource.Resource):
    """``GET /flawless.js``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self._script = client_script()

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """The script, cacheable for a few minutes."""
        request.setHeader(b"content-type", b"text/javascript; charset=utf-8")
        request.setHeader(b"cache-control", f"public, max-age={SCRIPT_MAX_AGE_SECONDS}".encode())
        return self._script


class BrowserReports(resource.Resource):
    """``POST /browser?key=KEY``: one error of a page."""

    isLeaf = True

    def __init__(self, gate: IngestGate, max_body_bytes: int, cors: Cors):
        super().__init__()
        self._gate = gate
        self._max_body_bytes = min(max_body_bytes, MAX_BROWSER_BODY_BYTES)
        self._cors = cors
        self._scrubber = Scrubber(home="", virtualenv="")

    def _plain(self, request: server.Request, status: int, text: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"{status} {text}\n".encode()

    def render_OPTIONS(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """A preflight (flawless.js sends simple requests, but other code may not)."""
        return self._cors.preflight(request)

    def render_POST(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Check the origin, the key and the rates; store the page's report."""
        if not self._cors.answer(request, required=True):
            return self._plain(request, 403, "Forbidden: this page's origin is not in the "
                                             "server's allowed_origins")
        key = self._gate.keys.key_of(request)
        if key is None:
            return self._plain(request, 401, "Unauthorized: data-key must be one of the "
                                             "server's ingest keys")
        wait = self._gate.wait(request, key, 1)
        if wait is not None:
            request.setHeader(b"retry-after", retry_after_header(wait).encode())
            return self._plain(request, 429, "Too Many Requests")
        try:
            body = bounded_body(request, self._max_body_bytes)
        except Refused as refused:
            return self._plain(request, refused.status, refused.reason)
        try:
            wire = browser_report(json.loads(body))
            if wire is None:
                return self._plain(request, 400, "Bad Request: the body must be a JSON object")
            report = self._scrubber.scrub_report(parse_report(wire))
        except (ValueError, RecursionError) as error:
            detail = "; ".join(f"{name}: {reason}" for name, reason in error.errors.items()) \
                if isinstance(error, InvalidReport) else "the body is not JSON"
            return self._plain(request, 400, f"Bad Request: {detail}")
        request.setHeader(b"content-type", b"application/json")
        return self._gate.store(request, inbox_payload([report]), 1,
                                lambda: b'{"accepted": true}')
