"""WSGI middleware: ``app = FlawlessMiddleware(app)``.

Reports exceptions raised while calling the application, while iterating its response and
in the response's ``close()``, then lets them propagate to the server as before. The request
line and a few harmless headers go in ``additional_info``; credential headers (``Cookie``,
``Authorization``, anything whose name matches the scrubber's patterns) are never included,
nor is the client's address. Query parameters with sensitive names are masked.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Iterator, Optional
from urllib.parse import parse_qsl, urlencode

import flawless.client
from flawless.client.scrub import MASK

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]

DEFAULT_HEADERS: tuple[str, ...] = ("Host", "User-Agent", "Referer", "Accept", "Content-Type",
                                    "Content-Length", "X-Request-Id")
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization",
                                "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token",
                                "x-forwarded-for", "x-real-ip", "forwarded"})


def _environ_key(header: str) -> str:
    name = header.upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name


def describe_request(environ: dict, headers: Iterable[str] = DEFAULT_HEADERS) -> str:
    """The request line and the selected headers, without credentials."""
    is_sensitive = flawless.client.get_client().scrubber.is_sensitive_name
    query = environ.get("QUERY_STRING", "")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "?" + urlencode([(name, MASK if is_sensitive(name) else value)
                                 for name, value in pairs], safe="<>")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    lines = [f"{environ.get('REQUEST_METHOD', '?')} {path}{query} "
             f"{environ.get('SERVER_PROTOCOL', '')}".rstrip()]
    for header in headers:
        if header.lower() in CREDENTIAL_HEADERS or is_sensitive(header):
            continue
        value = environ.get(_environ_key(header))
        if value:
            lines.append(f"{header}: {value}")
    return "\n".join(lines)


class FlawlessMiddleware:
    """Wraps any WSGI application and reports what it raises."""

    def __init__(self, app: WsgiApp, headers: Iterable[str] = DEFAULT_HEADERS,
                 error_threshold: Optional[int] = None) -> None:
        self.app = app
        self.headers = tuple(headers)
        self.error_threshold = error_threshold

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            response = self.app(environ, start_response)
        except Exception:
            self.report(environ)
            raise
        return _ReportingResponse(response, self, environ)

    def report(self, environ: dict) -> None:
        """Report the exception being handled, describing the request."""
        try:
            info = describe_request(environ, self.headers)
        except Exception:
            info = None
        flawless.client.get_client().record(sys.exc_info(), error_threshold=self.error_threshold,
                                            additional_info=info)


class _ReportingResponse:
    """The application's response iterable, reporting errors of iteration and ``close()``."""

    def __init__(self, response: Iterable[bytes], middleware: FlawlessMiddleware,
                 environ: dict) -> None:
        self.response = response
        self.middleware = middleware
        self.environ = environ

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.response
        except Exception:
            self.middleware.report(self.environ)
            raise

    def close(self) -> None:
        """Close the application's response, as PEP 3333 requires."""
        close = getattr(self.response, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            self.middleware.report(self.environ)
            raise
