"""HTTP for the dashboard: answers, errors, checked parameters, one endpoint per URL.

Every answer carries the security headers; a handler raises :class:`HttpError` to end a
request with a status and a message meant for the person who sent it.
"""

from __future__ import annotations

import datetime
import json
import math
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Sequence

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from flawless.config import parse_bool

log = Logger()

MAX_TIMESTAMP = 253402300799  # 9999-12-31
SECURITY_HEADERS = (
    ("content-security-policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
)


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class HttpError(Exception):
    """Ends a request with ``status`` and a message meant for the person who sent it."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


Handler = Callable[[server.Request], Awaitable[Answer]]
ErrorPage = Callable[[int, str], Answer]
# Decides before a handler runs: None lets it run, an Answer is sent instead (a login).
Guard = Callable[[server.Request, bool], Optional[Answer]]
# Printable ASCII but the space: what a header value keeps as it is.
_HEADER_SAFE = "".join(chr(code) for code in range(33, 127))


def header_value(value: str) -> bytes:
    """A header value as bytes: ASCII as it is, anything else percent-encoded as UTF-8 (a
    header carries no other text safely)."""
    if value.isascii():
        return value.encode("ascii")
    return urllib.parse.quote(value, safe=_HEADER_SAFE + " ").encode("ascii")


def safe_next(path: str) -> str:
    """A local path to return to after login (anything else becomes /)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path \
            and not any(ord(char) < 32 or ord(char) == 127 for char in path):
        # A header carries ASCII only: anything else travels percent-encoded.
        return urllib.parse.quote(path, safe="/?&=%#:@!$'()*+,;~-._")
    return "/"


class Params:
    """Checked access to a request's query and form parameters."""

    def __init__(self, args: Mapping[bytes, Sequence[bytes]]):
        self._args = args

    def text(self, name: str, required: bool = False, default: str = "") -> str:
        """One text parameter; a required one must be present and not blank."""
        values = self._args.get(name.encode())
        if not values:
            if required:
                raise HttpError(400, f"The parameter '{name}' is missing.")
            return default
        try:
            value = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, f"The parameter '{name}' is not valid UTF-8.") from None
        if required and not value.strip():
            raise HttpError(400, f"The parameter '{name}' is empty.")
        return value

    def timestamp(self, name: str = "timestamp") -> Optional[float]:
        """Seconds since the epoch, or None when absent."""
        raw = self.text(name).strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 <= value <= MAX_TIMESTAMP:
            raise HttpError(400, f"The parameter '{name}' must be a time in seconds since "
                                 f"1970 (for example {int(datetime.datetime.now().timestamp())}).")
        return value

    def positive_int(self, name: str) -> Optional[int]:
        """A whole number of at least 1, or None when absent."""
        raw = self.text(name).strip()
        if not raw:
            return None
        if not raw.isdigit() or not 1 <= int(raw) <= 10**9:
            raise HttpError(400, f"The parameter '{name}' must be a whole number of at least 1.")
        return int(raw)

    def flag(self, name: str) -> bool:
        """A yes/no parameter; absent means no."""
        raw = self.text(name).strip()
        if not raw:
            return False
        try:
            return parse_bool(raw)
        except ValueError:
            raise HttpError(400, f"The parameter '{name}' must be true or false.") from None

    def form(self) -> dict[str, str]:
        """Every parameter as text (first value of each)."""
        return {name.decode("utf-8", "replace"): self.text(name.decode("utf-8", "replace"))
                for name in self._args}


def json_error(status: int, message: str) -> Answer:
    """An error answer of the JSON API."""
    return Answer(status, json.dumps({"error": message}).encode(), "application/json")


def json_answer(data: Any) -> Answer:
    """A JSON API answer."""
    return Answer(200, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                  "application/json; charset=utf-8")


class Endpoint(resource.Resource):
    """One URL: runs its GET or POST handler and writes the answer (or an error page)."""

    isLeaf = True

    def __init__(self, error_page: ErrorPage, get: Optional[Handler] = None,
                 post: Optional[Handler] = None, as_json: bool = False,
                 guard: Optional[Guard] = None):
        super().__init__()
        self._error_page = error_page
        self._get = get
        self._post = post
        self._as_json = as_json
        self._guard = guard

    def render_GET(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Answer a GET (and HEAD)."""
        return self._run(self._get, request)

    def render_POST(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Answer a POST."""
        return self._run(self._post, request)

    def _run(self, handler: Optional[Handler], request: server.Request) -> Any:
        if handler is None:
            request.setHeader(b"allow", b"GET, HEAD" if self._post is None else b"GET, POST")
            self._write(request, self._error(405, "This address does not take that method."))
            return server.NOT_DONE_YET
        if self._guard is not None:
            refusal = self._guard(request, self._as_json)
            if refusal is not None:
                self._write(request, refusal)
                return server.NOT_DONE_YET
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))
        result = defer.ensureDeferred(handler(request))
        result.addErrback(self._failed)
        result.addCallback(lambda answer: None if finished else self._write(request, answer))
        result.addErrback(self._write_failed, request)
        return server.NOT_DONE_YET

    def _error(self, status: int, message: str) -> Answer:
        if self._as_json:
            return json_error(status, message)
        return self._error_page(status, message)

    def _failed(self, failure: Any) -> Answer:
        if failure.check(HttpError):
            answer = self._error(failure.value.status, failure.value.message)
            if failure.value.status == 429:
                retry = str(getattr(failure.value, "retry_after", 60))
                answer = Answer(answer.status, answer.body, answer.content_type,
                                answer.headers + (("retry-after", retry),))
            return answer
        log.failure("dashboard page failed", failure)
        return self._error(500, "Something went wrong on the server; its log has the details.")

    @staticmethod
    def _write(request: server.Request, answer: Answer) -> None:
        if request.finished or request._disconnected:
            return
        request.setResponseCode(answer.status)
        request.setHeader(b"content-type", answer.content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        for name, value in SECURITY_HEADERS + answer.headers:
            if name == "set-cookie":  # several may be set; setHeader would keep the last
                request.responseHeaders.addRawHeader(b"set-cookie", header_value(value))
            else:
                request.setHeader(name.encode(), header_value(value))
        request.setHeader(b"content-length", str(len(answer.body)).encode())
        request.write(answer.body)
        request.finish()

    def _write_failed(self, failure: Any, request: server.Request) -> None:
        """Writing the answer failed: the request still gets one, never hangs."""
        log.failure("writing an answer failed", failure)
        if request.finished or request._disconnected or request.startedWriting:
            if not (request.finished or request._disconnected):
                request.loseConnection()
            return
        request.responseHeaders = type(request.responseHeaders)()
        self._write(request, self._error(500, "Something went wrong on the server; its log "
                                              "has the details."))


def redirect(location: str, *cookies: str) -> Answer:
    """A 303 to ``location``, setting the given Set-Cookie values."""
    headers = (("location", location),) + tuple(("set-cookie", cookie) for cookie in cookies)
    return Answer(303, b"", "text/plain; charset=utf-8", headers)


def cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    """A Set-Cookie value that scripts cannot read and other sites never send."""
    return (f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


class StaticFile(resource.Resource):
    """A stylesheet or image from the template directory."""

    isLeaf = True

    def __init__(self, path: str, content_type: str):
        super().__init__()
        with open(path, "rb") as handle:
            self._body = handle.read()
        self._content_type = content_type.encode()

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """The file, cacheable for an hour."""
        request.setHeader(b"content-type", self._content_type)
        request.setHeader(b"cache-control", b"public, max-age=3600")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return self._body
