"""What of an HTTP request a report carries, for every web integration.

The method, the URL with the names of its query parameters but none of their values, the
route that matched, and a few headers that are not secret (``Host``, ``User-Agent``, ...;
the ``Referer`` without query values). Never cookies, bodies, query values, credentials or
the client's address. What is kept is scrubbed later like every other text (an email
address in a path is masked).
"""

from __future__ import annotations

import inspect
import linecache
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Iterable, Mapping, Optional
from urllib.parse import unquote_plus

import flawless.client
from flawless.client.capture import ExcInfo
from flawless.client.guard import never_raises
from flawless.client.scope import RequestSource
from flawless.report import (MAX_HEADER_CHARS, MAX_HEADERS, MAX_METHOD_CHARS, MAX_STRING_CHARS,
                             RequestInfo, trim)

DEFAULT_HEADERS: tuple[str, ...] = ("Host", "User-Agent", "Referer", "Accept", "Content-Type",
                                    "Content-Length", "X-Request-Id")
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization",
                                "x-api-key", "x-auth-token", "x-csrf-token", "x-xsrf-token",
                                "x-forwarded-for", "x-real-ip", "forwarded"})
_MAX_QUERY_NAMES = 32
_MAX_NAME_CHARS = 64


def query_names(query: str) -> str:
    """``a=1&b=secret&a=2`` -> ``a&b``: the names, each once, none of the values."""
    names: list[str] = []
    for pair in query.split("&"):
        name = unquote_plus(pair.partition("=")[0])[:_MAX_NAME_CHARS]
        if name and name not in names:
            names.append(name)
            if len(names) >= _MAX_QUERY_NAMES:
                break
    return "&".join(names)


def without_query_values(url: str) -> str:
    """``url`` with its query reduced to names and without its fragment."""
    url = url.partition("#")[0]
    base, _, query = url.partition("?")
    names = query_names(query)
    return f"{base}?{names}" if names else base


def safe_headers(wanted: Iterable[str], value_of: Callable[[str], Optional[str]],
                 is_sensitive: Callable[[str], bool]) -> dict[str, str]:
    """The ``wanted`` headers that are present and not credentials, as ``value_of`` (a
    lookup by header name) gives them."""
    kept: dict[str, str] = {}
    for header in wanted:
        if header.lower() in CREDENTIAL_HEADERS or is_sensitive(header):
            continue
        value = value_of(header)
        if value:
            if header.lower() == "referer":
                value = without_query_values(value)
            kept[header] = trim(value, MAX_HEADER_CHARS)
            if len(kept) >= MAX_HEADERS:
                break
    return kept


def _environ_key(header: str) -> str:
    name = header.upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name


_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def _host(scheme: str, name: str, port: Any) -> str:
    """``name:port``, without the scheme's default port."""
    port = str(port or "")
    return name if not port or _DEFAULT_PORTS.get(scheme) == port else f"{name}:{port}"


def _wsgi_text(value: str) -> str:
    """PEP 3333 carries bytes as latin-1 text; URLs are UTF-8 in practice."""
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


def wsgi_request(environ: Mapping[str, Any], headers: Iterable[str] = DEFAULT_HEADERS,
                 is_sensitive: Callable[[str], bool] = lambda name: False,
                 route: Optional[str] = None) -> RequestInfo:
    """The request of a WSGI ``environ`` (or Django's ``request.META``)."""
    scheme = environ.get("wsgi.url_scheme") or "http"
    host = environ.get("HTTP_HOST") or _host(scheme, environ.get("SERVER_NAME", ""),
                                             environ.get("SERVER_PORT"))
    path = _wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    names = query_names(_wsgi_text(environ.get("QUERY_STRING", "")))
    return _request(environ.get("REQUEST_METHOD"), f"{scheme}://{host}{path}", names, route,
                    safe_headers(headers, lambda name: environ.get(_environ_key(name)),
                                 is_sensitive))


def _request(method: Optional[str], url: str, names: str, route: Optional[str],
             headers: dict[str, str]) -> RequestInfo:
    return RequestInfo(
        method=trim(method, MAX_METHOD_CHARS) if isinstance(method, str) else None,
        url=trim(url + (f"?{names}" if names else ""), MAX_STRING_CHARS),
        route=trim(route, MAX_STRING_CHARS) if isinstance(route, str) else None,
        headers=headers)


def asgi_request(scope: Mapping[str, Any], headers: Iterable[str] = DEFAULT_HEADERS,
                 is_sensitive: Callable[[str], bool] = lambda name: False) -> RequestInfo:
    """The request of an ASGI ``http`` or ``websocket`` scope."""
    received: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        received.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    server = scope.get("server") or ("", None)
    scheme = scope.get("scheme") or ("ws" if scope.get("type") == "websocket" else "http")
    host = received.get("host") or _host(scheme, str(server[0]), server[1])
    root, path = scope.get("root_path", ""), scope.get("path", "")
    if root and not path.startswith(root):
        path = root + path
    names = query_names((scope.get("query_string") or b"").decode("latin-1"))
    return _request(scope.get("method"), f"{scheme}://{host}{path}", names,
                    getattr(scope.get("route"), "path", None),
                    safe_headers(headers, lambda name: received.get(name.lower()), is_sensitive))


def level_of(status: int) -> str:
    """The level of a report of a response with this status."""
    return "error" if status >= 500 else "warning"


def status_message(status: int) -> str:
    """The text of a report of a response with this status (``HTTP 404 Not Found``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP {status} {phrase}".rstrip()


def view_site(view: Any) -> list[tuple[str, int, str, str]]:
    """Where a view function is defined, as a one-frame stack (a response's status has no
    traceback; its view is the code to blame)."""
    try:
        code = inspect.unwrap(view).__code__
    except Exception:  # not a function (a class-based view, a callable object)
        return []
    line = linecache.getline(code.co_filename, code.co_firstlineno).strip()
    return [(code.co_filename, code.co_firstlineno, code.co_name, line)]


def is_sensitive_header(name: str) -> bool:
    """Whether the client's scrubber masks values of this name."""
    return flawless.client.get_client().scrubber.is_sensitive_name(name)


@dataclass(frozen=True)
class WebOptions:
    """What every web integration is told, and its two ways of reporting.

    ``report_http_status``: statuses (``range(400, 500)``, ``[404]``) whose responses and
    exceptions are reported too; by default only unhandled errors are, never a 4xx.
    ``headers``: the request headers a report may carry (credentials never are).
    """

    report_http_status: frozenset[int] = frozenset()
    headers: tuple[str, ...] = DEFAULT_HEADERS
    error_threshold: Optional[int] = None

    @classmethod
    def of(cls, report_http_status: Iterable[int] = (),
           headers: Iterable[str] = DEFAULT_HEADERS,
           error_threshold: Optional[int] = None) -> "WebOptions":
        """Options from what a user passes."""
        return cls(frozenset(int(status) for status in report_http_status), tuple(headers),
                   error_threshold)

    @never_raises
    def report_exception(self, exc_info: ExcInfo, request: Optional[RequestSource],
                         user_id: Optional[str] = None,
                         context: Optional[Mapping[str, Any]] = None,
                         status: int = 500) -> None:
        """Report an exception raised while serving a request, answered with ``status``."""
        flawless.client.get_client().record(exc_info, error_threshold=self.error_threshold,
                                            context=context, request=request,
                                            user_id=user_id, level=level_of(status))

    @never_raises
    def report_status(self, status: int, view: Any, request: Optional[RequestSource],
                      user_id: Optional[str] = None) -> None:
        """Report a response whose status is in ``report_http_status``, blamed on ``view``."""
        flawless.client.get_client().record_message(status_message(status), level_of(status),
                                                    view_site(view), request=request,
                                                    user_id=user_id)
