"""The JSON-RPC 2.0 endpoint (``POST /rpc``): authentication, size limit, parsing, dispatch.

Methods: ``ping()`` and ``record_error({"report": REPORT})``. Valid reports of a request
(single or batch) are committed together and answered only once durably stored.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from twisted.web import resource, server

from flawless.report import InvalidReport, stored_form
from flawless.server.ingest.fastpath import StorableCalls, storable_record_calls
from flawless.server.ingest.gate import IngestGate, refuse_unstored, write
from flawless.server.ingest.http import BodyTooLarge, read_body
from flawless.server.ingest.ratelimit import retry_after_header

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MAX_BATCH_REQUESTS = 10000
ENVELOPE_FIELDS = frozenset(("jsonrpc", "id", "method", "params"))
ACCEPTED = {"accepted": True}


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> dict:
    """A JSON-RPC error object."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def answers_body(answers: list[dict], is_batch: bool) -> bytes:
    """The HTTP body of JSON-RPC answers: a list for a batch, one object otherwise, and
    nothing at all when every call was a notification."""
    if not answers:
        return b""
    return json.dumps(answers if is_batch else answers[0], allow_nan=False).encode()


def result_response(request_id: Any, result: Any) -> dict:
    """A JSON-RPC success object."""
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _report_params(params: Any) -> Any:
    """The REPORT inside ``{"report": REPORT}`` (or ``[REPORT]``)."""
    if isinstance(params, dict) and "report" in params:
        return params["report"]
    if isinstance(params, list) and len(params) == 1:
        return params[0]
    raise InvalidReport({"params": 'must be {"report": REPORT}'})


def _not_json(constant: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are Python's extension, not JSON."""
    raise ValueError(f"{constant} is not a JSON value")


def valid_id(request_id: Any) -> bool:
    """Whether a JSON-RPC id is a string, a finite number or null (an id of 1e400 would
    be echoed as Infinity, which is not JSON)."""
    if isinstance(request_id, float):
        return math.isfinite(request_id)
    return request_id is None or (isinstance(request_id, (str, int))
                                  and not isinstance(request_id, bool))


class Call:
    """One request of a (possibly batched) JSON-RPC body, and its answer once known."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.request_id: Any = raw.get("id") if isinstance(raw, dict) else None
        self.is_notification = isinstance(raw, dict) and "id" not in raw
        self.has_report = False
        # The report as stored, when the call cannot be stored as it came (a report that had
        # to be trimmed or cleaned, or fields that are not part of the wire contract).
        self.trimmed: Optional[dict] = None
        self.answer: Optional[dict] = None
        if not valid_id(self.request_id):
            self.request_id = None
            self.answer = error_response(None, INVALID_REQUEST, "Invalid Request: the id must "
                                         "be a string, a finite number or null")

    def examine(self) -> None:
        """Validate the call; set ``answer`` now unless a report must be stored first."""
        if self.answer is not None:
            return
        raw = self.raw
        if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0" or \
                not isinstance(raw.get("method"), str):
            self.is_notification = False
            self.answer = error_response(self.request_id, INVALID_REQUEST,
                                         'Invalid Request: needs "jsonrpc": "2.0" and a method')
            return
        method = raw["method"]
        if method == "ping":
            self.answer = result_response(self.request_id, True)
        elif method == "record_error":
            try:
                params = raw.get("params")
                self.trimmed = stored_form(_report_params(params))
                if self.trimmed is None and not (raw.keys() <= ENVELOPE_FIELDS and isinstance(
                        params, dict) and params.keys() == {"report"}):
                    self.trimmed = params["report"] if isinstance(params, dict) else params[0]
                self.has_report = True
            except InvalidReport as invalid:
                self.answer = error_response(self.request_id, INVALID_PARAMS,
                                             f"Invalid params: {invalid}", invalid.errors)
        else:
            self.answer = error_response(self.request_id, METHOD_NOT_FOUND,
                                         f"Method not found: {method[:100]}")

    def stored(self) -> dict:
        """The call as it is kept in the inbox: its report trimmed and cleaned if needed."""
        if self.trimmed is None:
            return self.raw
        return {"jsonrpc": "2.0", "method": "record_error", "params": {"report": self.trimmed}}

    def accepted(self) -> None:
        """The report is stored."""
        self.answer = result_response(self.request_id, ACCEPTED)


class RpcResource(resource.Resource):
    """``POST /rpc``: JSON-RPC 2.0 over HTTP."""

    isLeaf = True

    def __init__(self, gate: IngestGate, max_body_bytes: int):
        super().__init__()
        self._gate = gate
        self._inbox = gate.inbox
        self._max_body_bytes = max_body_bytes

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """A GET is a mistake: explain how to talk to this endpoint."""
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return self._plain(request, "POST JSON-RPC 2.0 requests to this URL\n")

    def _plain(self, request: server.Request, text: str) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return text.encode()

    def render_POST(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Authenticate, read, parse and dispatch one JSON-RPC body."""
        key = self._gate.keys.key_of(request)
        if key is None:
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Bearer realm="flawless"')
            return self._plain(request, "401 Unauthorized: send Authorization: Bearer KEY "
                                        "with one of the server's ingest keys\n")
        try:
            body = read_body(request, self._max_body_bytes)
        except BodyTooLarge:
            request.setResponseCode(413)
            request.setHeader(b"connection", b"close")
            return self._plain(request, f"413 Payload Too Large: the limit is "
                                        f"{self._max_body_bytes} bytes after decompression\n")
        except ValueError as error:
            request.setResponseCode(400)
            return self._plain(request, f"400 Bad Request: {error}\n")
        request.setHeader(b"content-type", b"application/json")
        fast = storable_record_calls(body)
        if fast is not None and fast.calls <= MAX_BATCH_REQUESTS:
            return self._store_as_received(request, key, body, fast)
        try:
            payload = json.loads(body, parse_constant=_not_json)
        except (ValueError, RecursionError) as error:
            return self._json(error_response(None, PARSE_ERROR, f"Parse error: {error}"))
        is_batch = isinstance(payload, list)
        if is_batch and not payload:
            return self._json(error_response(None, INVALID_REQUEST, "Invalid Request: empty batch"))
        if is_batch and len(payload) > MAX_BATCH_REQUESTS:
            return self._json(error_response(
                None, INVALID_REQUEST, f"Invalid Request: more than {MAX_BATCH_REQUESTS} calls"))
        calls = [Call(raw) for raw in (payload if is_batch else [payload])]
        refusal = self._rate_limit_refusal(request, key, len(calls))
        if refusal is not None:
            return refusal
        for call in calls:
            call.examine()
        reports = [call for call in calls if call.has_report]
        if not reports:
            return self._answer(request, calls, is_batch)
        if len(reports) < len(calls) or any(call.trimmed for call in reports):
            body = json.dumps([call.stored() for call in reports]).encode()
        stored = self._inbox.accept(body, len(reports))
        stored.addCallback(lambda _: self._stored(request, calls, is_batch))
        stored.addErrback(refuse_unstored, request)
        return server.NOT_DONE_YET

    def _store_as_received(self, request: server.Request, key: bytes, body: bytes,
                           fast: StorableCalls) -> Any:
        """Store a body of valid record_error calls as it came, answering each accepted."""
        refusal = self._rate_limit_refusal(request, key, fast.calls)
        if refusal is not None:
            return refusal
        return self._gate.store(request, body, fast.calls, lambda: answers_body(
            [result_response(request_id, ACCEPTED) for request_id in fast.ids], fast.is_batch))

    def _rate_limit_refusal(self, request: server.Request, key: bytes,
                            cost: int) -> Optional[bytes]:
        """The 429 answer (status and Retry-After set) when over a rate limit, else None."""
        wait = self._gate.wait(request, key, cost)
        if wait is None:
            return None
        request.setResponseCode(429)
        request.setHeader(b"retry-after", retry_after_header(wait).encode())
        return self._plain(request, "429 Too Many Requests: slow down and retry after "
                                    f"{retry_after_header(wait)} s\n")

    def _stored(self, request: server.Request, calls: list[Call], is_batch: bool) -> None:
        for call in calls:
            if call.has_report:
                call.accepted()
        write(request, self._answer(request, calls, is_batch))

    def _answer(self, request: server.Request, calls: list[Call], is_batch: bool) -> bytes:
        """The body answering ``calls`` (no body, and 204, when all were notifications)."""
        body = answers_body([call.answer for call in calls if not call.is_notification],
                            is_batch)
        if body == b"":
            request.setResponseCode(204)
        return body

    def _json(self, answer: dict) -> bytes:
        return json.dumps(answer, allow_nan=False).encode()

