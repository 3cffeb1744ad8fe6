"""WSGI middleware: ``app = FlawlessMiddleware(app)``.

Reports exceptions raised while calling the application, while iterating its response and
in the response's ``close()``, then lets them propagate to the server unchanged. Each
request gets a fresh scope (tags and user set while serving it go with its reports only),
and its reports carry the request (see :mod:`flawless.client.webrequest`: no query values,
no credentials, no cookies, no body). Flask and Django turn a view's exception into a 500
response before any WSGI middleware sees it: use :mod:`flawless.client.flask` or
``flawless.client.django`` there.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Optional

from flawless.client import scope as scopes
from flawless.client.webrequest import (DEFAULT_HEADERS, WebOptions, is_sensitive_header,
                                        wsgi_request)

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class FlawlessMiddleware:
    """Wraps any WSGI application and reports what it raises."""

    def __init__(self, app: WsgiApp, headers: Iterable[str] = DEFAULT_HEADERS,
                 error_threshold: Optional[int] = None) -> None:
        self.app = app
        self.options = WebOptions.of(headers=headers, error_threshold=error_threshold)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = partial(wsgi_request, environ, self.options.headers, is_sensitive_header)
        token = scopes.enter(scopes.Scope(request=request))
        try:
            response = self.app(environ, start_response)
        except Exception:
            self.options.report_exception(sys.exc_info(), request)
            raise
        finally:
            scopes.leave(token)
        return _ReportingResponse(response, self.options, request)


class _ReportingResponse:
    """The application's response iterable, reporting errors of iteration and ``close()``."""

    def __init__(self, response: Iterable[bytes], options: WebOptions,
                 request: Callable[[], Any]) -> None:
        self.response = response
        self.options = options
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.response
        except Exception:
            self.options.report_exception(sys.exc_info(), self.request)
            raise

    def close(self) -> None:
        """Close the application's response, as PEP 3333 requires."""
        close = getattr(self.response, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            self.options.report_exception(sys.exc_info(), self.request)
            raise
