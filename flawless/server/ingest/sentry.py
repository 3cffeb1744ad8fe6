"""Sentry SDKs' way in: ``POST /api/PROJECT_ID/store/`` and ``/api/PROJECT_ID/envelope/``.

The DSN ``http://KEY@HOST:PORT/PROJECT_ID`` points every Sentry SDK here. The key comes from
``X-Sentry-Auth`` (or ``Authorization: Sentry ...``) or the ``sentry_key`` query parameter
(``ingest/keys.py``), checked before the body is read; bodies may be gzip, deflate or br. Each event becomes a REPORT
(``core/sentry_event.py``), scrubbed like the Python client's, validated by
``flawless.report``, and stored in the inbox like a JSON-RPC report; the answer, once it is
durable, is ``{"id": EVENT_ID}``. Other item types are accepted and dropped. Refusals speak
the protocol: 401, 413 over size, 429 with ``Retry-After`` and ``X-Sentry-Rate-Limits``,
and 400 naming what is wrong with a body that cannot be read (never a 5xx for a bad body).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Optional

from twisted.web import pages, resource, server

from flawless.client.scrub import Scrubber
from flawless.report import InvalidReport, Report, parse_report
from flawless.server.core.envelope import BadEnvelope, event_json, parse_envelope
from flawless.server.core.sentry_event import report_from_event
from flawless.server.ingest.cors import Cors
from flawless.server.ingest.gate import IngestGate, inbox_payload
from flawless.server.ingest.http import Refused, bounded_body
from flawless.server.ingest.ratelimit import retry_after_header

ENDPOINTS = (b"store", b"envelope")
_EVENT_ID_CHARS = frozenset("0123456789abcdef")


def scrubbed_report(wire: dict[str, Any], scrubber: Scrubber, what: str) -> Report:
    """A mapped report validated by flawless.report and scrubbed like the client's."""
    try:
        return scrubber.scrub_report(parse_report(wire))
    except InvalidReport as invalid:
        raise BadEnvelope(f"{what} cannot be a report: {invalid}") from None


def _event_id(event: dict[str, Any], header: dict[str, Any]) -> str:
    for candidate in (event.get("event_id"), header.get("event_id")):
        if isinstance(candidate, str):
            compact = candidate.replace("-", "").lower()
            if len(compact) == 32 and set(compact) <= _EVENT_ID_CHARS:
                return compact
    return uuid.uuid4().hex


class SentryApi(resource.Resource):
    """``/api/``: one child per project id, each answering ``store/`` and ``envelope/``."""

    def __init__(self, gate: IngestGate, max_body_bytes: int, cors: Cors):
        super().__init__()
        self._endpoint = SentryEndpoint(gate, max_body_bytes, cors)

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:  # noqa: N802
        """The endpoint for a numeric project id; 404 otherwise."""
        if path.isdigit() and len(path) <= 20:
            return self._endpoint
        return pages.notFound("No such project", "Use /api/PROJECT_ID/envelope/.")


class SentryEndpoint(resource.Resource):
    """``store/`` and ``envelope/`` of any project id (flawless routes by file, not project)."""

    isLeaf = True

    def __init__(self, gate: IngestGate, max_body_bytes: int, cors: Cors):
        super().__init__()
        self._gate = gate
        self._max_body_bytes = max_body_bytes
        self._cors = cors
        self._scrubber = Scrubber(home="", virtualenv="")

    @staticmethod
    def _kind(request: server.Request) -> Optional[bytes]:
        rest = [part for part in request.postpath if part]
        return rest[0] if len(rest) == 1 and rest[0] in ENDPOINTS else None

    def _detail(self, request: server.Request, status: int, detail: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"detail": detail}).encode()

    def render_OPTIONS(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """The preflight of a browser SDK."""
        return self._cors.preflight(request)

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """Only POST is spoken here."""
        request.setHeader(b"allow", b"POST")
        return self._detail(request, 405, "POST Sentry events or envelopes to this URL")

    def render_POST(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Authenticate, read, map and store one store body or envelope."""
        kind = self._kind(request)
        if kind is None:
            return self._detail(request, 404, "use /api/PROJECT_ID/store/ or /envelope/")
        if not self._cors.answer(request, required=False):
            return self._detail(request, 403, "this page's origin is not in allowed_origins")
        key = self._gate.keys.key_of(request)
        if key is None:
            return self._detail(request, 401, "unknown key: use a DSN whose key is one of "
                                              "the server's ingest keys")
        try:
            body = bounded_body(request, self._max_body_bytes)
        except Refused as refused:
            return self._detail(request, refused.status, refused.reason)
        try:
            if kind == b"store":
                header: dict[str, Any] = {}
                events = [event_json(body, "the body")]
            else:
                envelope = parse_envelope(body)
                header = envelope.header
                events = [event_json(item.payload, f"event item {number}")
                          for number, item in enumerate(envelope.events, 1)]
        except BadEnvelope as bad:
            return self._detail(request, 400, str(bad))
        wait = self._gate.wait(request, key, max(1, len(events)))
        if wait is not None:
            seconds = retry_after_header(wait)
            request.setHeader(b"retry-after", seconds.encode())
            request.setHeader(b"x-sentry-rate-limits", f"{seconds}::key".encode())
            return self._detail(request, 429, f"too many events: retry after {seconds} s")
        try:
            reports = [scrubbed_report(report_from_event(event) or {}, self._scrubber,
                                       f"event {number}")
                       for number, event in enumerate(events, 1)]
        except BadEnvelope as bad:
            return self._detail(request, 400, str(bad))
        request.setHeader(b"content-type", b"application/json")
        answer = json.dumps({"id": _event_id(events[0], header)} if events else {}).encode()
        if not reports:
            return answer
        return self._gate.store(request, inbox_payload(reports), len(reports), lambda: answer)
