"""ASGI middleware (Starlette, FastAPI, any ASGI app): ``app = FlawlessASGIMiddleware(app)``
or ``app.add_middleware(FlawlessASGIMiddleware)``.

Reports exceptions escaping the application while serving an ``http`` or ``websocket``
scope, with the request (method, URL without query values, route, headers that are not
secret), then re-raises them unchanged. Starlette answers an unhandled exception with a 500
and re-raises it, so it reaches this middleware wherever it is placed. An exception an app's
exception handler answers (FastAPI's ``@app.exception_handler(SomeError)``) does not:
call ``flawless.client.record_error`` in the handler, as for Flask. 4xx responses
(``HTTPException``) are not reported unless their status is in ``report_http_status``; they
are then blamed on the endpoint. ``user_id`` is a function of the scope returning the user's
id. Each request runs in a fresh scope (``set_tag`` and ``set_user`` hold for it alone).
Imports no framework.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Awaitable, Callable, Iterable, MutableMapping, Optional

from flawless.client import scope as scopes
from flawless.client.webrequest import (DEFAULT_HEADERS, WebOptions, asgi_request,
                                        is_sensitive_header)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SERVED = ("http", "websocket")


class FlawlessASGIMiddleware:
    """Wraps an ASGI application and reports what escapes it."""

    def __init__(self, app: AsgiApp, *, report_http_status: Iterable[int] = (),
                 headers: Iterable[str] = DEFAULT_HEADERS,
                 user_id: Optional[Callable[[Scope], Any]] = None,
                 error_threshold: Optional[int] = None) -> None:
        self.app = app
        self.options = WebOptions.of(report_http_status, headers, error_threshold)
        self.user_id = user_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in _SERVED:
            await self.app(scope, receive, send)
            return
        request = partial(asgi_request, scope, self.options.headers, is_sensitive_header)
        token = scopes.enter(scopes.Scope(request=request))
        status: list[int] = []
        if self.options.report_http_status and scope["type"] == "http":
            send = _watching_status(send, status)
        try:
            await self.app(scope, receive, send)
        except Exception:
            self.options.report_exception(sys.exc_info(), request, self._user_id(scope))
            raise
        finally:
            scopes.leave(token)
        if status and status[0] in self.options.report_http_status:
            self.options.report_status(status[0], scope.get("endpoint"), request,
                                       self._user_id(scope))

    def _user_id(self, scope: Scope) -> Optional[str]:
        if self.user_id is None:
            return None
        try:
            user_id = self.user_id(scope)
        except Exception:
            return None
        return None if user_id is None else str(user_id)


def _watching_status(send: Send, status: list[int]) -> Send:
    """``send``, noting the response's status in ``status``."""
    async def watching(message: Message) -> None:
        if message.get("type") == "http.response.start":
            status[:] = [message.get("status")]
        await send(message)
    return watching
