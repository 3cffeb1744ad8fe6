"""Flask: ``Flawless(app)``, or ``flawless = Flawless()`` then ``flawless.init_app(app)``.

Flask turns a view's exception into a 500 response before any WSGI middleware sees it, so
this listens to Flask's ``got_request_exception`` signal instead: each unhandled exception
is reported once, with the request (method, URL without query values, route rule, a few
headers that are not secret) and the view's name. Nothing else runs per request but a fresh
scope (``set_tag``, ``set_user`` hold for the request being served), so a request that does
not fail costs well under a microsecond or two.

Flask sends no signal for an exception that an ``errorhandler`` handles: call
``flawless.client.record_error(None, sys.exc_info())`` (or ``(type(e), e,
e.__traceback__)``) there; the exception is marked, so it is never reported twice.
``HTTPException``s (``abort(404)``) and 4xx responses are not reported unless their status
is in ``report_http_status``. ``user_id`` is a function returning the current user's id
(``lambda: flask_login.current_user.get_id()``); no user id is sent without it or
``set_user``. Flask is imported only by :meth:`Flawless.init_app`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from flawless.client import scope as scopes
from flawless.client.guard import never_raises
from flawless.client.webrequest import (DEFAULT_HEADERS, WebOptions, is_sensitive_header,
                                        wsgi_request)
from flawless.report import RequestInfo

_REPORTED = "flawless.reported"  # in the request's environ: this request made a report


class Flawless:
    """The Flask extension."""

    def __init__(self, app: Any = None, *, report_http_status: Iterable[int] = (),
                 headers: Iterable[str] = DEFAULT_HEADERS,
                 user_id: Optional[Callable[[], Any]] = None,
                 error_threshold: Optional[int] = None) -> None:
        self.options = WebOptions.of(report_http_status, headers, error_threshold)
        self.user_id = user_id
        self._request: Any = None  # flask.request and flask.has_request_context, once used
        self._has_request: Callable[[], bool] = lambda: False
        # One scope object serves every request: it describes whichever request is current.
        self._fresh_scope = scopes.Scope(request=self.describe_request)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Report ``app``'s unhandled exceptions (and statuses asked for)."""
        from flask import got_request_exception, has_request_context, request, request_finished

        self._request, self._has_request = request, has_request_context
        got_request_exception.connect(self._got_exception, app, weak=False)
        app.wsgi_app = _FreshScope(app.wsgi_app, self._fresh_scope)
        if self.options.report_http_status:
            app.handle_http_exception = _ReportingHttpExceptions(app.handle_http_exception,
                                                                 self)
            request_finished.connect(self._finished, app, weak=False)
        app.extensions["flawless"] = self

    def describe_request(self) -> Optional[RequestInfo]:
        """The request being served (None outside a request)."""
        if not self._has_request():
            return None
        request = self._request
        rule = request.url_rule
        return wsgi_request(request.environ, self.options.headers, is_sensitive_header,
                            route=rule.rule if rule is not None else None)

    def current_user_id(self) -> Optional[str]:
        """What ``user_id`` says, or None (when unset, or when it fails)."""
        if self.user_id is None:
            return None
        try:
            user_id = self.user_id()
        except Exception:
            return None
        return None if user_id is None else str(user_id)

    def report(self, exception: BaseException, status: int = 500) -> None:
        """Report ``exception``, answered with ``status``, with the current request and
        view."""
        request = self._request
        request.environ[_REPORTED] = True
        context = {"view": request.endpoint} if request.endpoint else None
        self.options.report_exception((type(exception), exception, exception.__traceback__),
                                      self.describe_request, self.current_user_id(), context,
                                      status)

    @never_raises
    def _got_exception(self, sender: Any, exception: BaseException, **extra: Any) -> None:
        self.report(exception)

    @never_raises
    def _finished(self, sender: Any, response: Any, **extra: Any) -> None:
        request = self._request
        status = response.status_code
        if status in self.options.report_http_status and not request.environ.get(_REPORTED):
            view = sender.view_functions.get(request.endpoint) if request.endpoint else None
            self.options.report_status(status, view, self.describe_request,
                                       self.current_user_id())


class _FreshScope:
    """The app's WSGI callable, run in a fresh scope."""

    def __init__(self, wsgi_app: Callable[..., Any], scope: scopes.Scope) -> None:
        self.wsgi_app = wsgi_app
        self.scope = scope

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Any:
        token = scopes.enter(self.scope)
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            scopes.leave(token)


class _ReportingHttpExceptions:
    """``app.handle_http_exception``, reporting the exceptions whose status was asked for."""

    def __init__(self, handle: Callable[[Any], Any], extension: Flawless) -> None:
        self.handle = handle
        self.extension = extension

    def __call__(self, error: Any) -> Any:
        self._report(error)
        return self.handle(error)

    @never_raises
    def _report(self, error: Any) -> None:
        status = getattr(error, "code", None)
        if status in self.extension.options.report_http_status:
            self.extension.report(error, status)
