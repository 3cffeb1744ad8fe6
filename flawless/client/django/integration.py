"""The Django integration: settings, signal receivers, and what a request tells."""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Mapping, Optional

import flawless.client
from flawless.client import scope as scopes
from flawless.client.capture import ExcInfo
from flawless.client.guard import never_raises
from flawless.client.webrequest import (WebOptions, asgi_request, is_sensitive_header,
                                        wsgi_request)
from flawless.report import RequestInfo

WEB_SETTINGS = ("report_http_status", "headers", "error_threshold", "user_id")
REPORTED = "flawless.reported"  # in request.META: this request made a report


def status_of(exception: BaseException) -> int:
    """The status Django answers ``exception`` with (see ``response_for_exception``)."""
    from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
    from django.http import Http404
    from django.http.multipartparser import MultiPartParserError

    if isinstance(exception, Http404):
        return 404
    if isinstance(exception, PermissionDenied):
        return 403
    if isinstance(exception, (BadRequest, SuspiciousOperation, MultiPartParserError)):
        return 400
    return 500


class DjangoIntegration:
    """Reports a Django project's errors; see the package's docstring for the settings."""

    def __init__(self, options: WebOptions, user_id: bool = False) -> None:
        self.options = options
        self.user_id = user_id

    def describe(self, request: Any) -> RequestInfo:
        """Method, URL without query values, route and safe headers of ``request``."""
        match = getattr(request, "resolver_match", None)
        environ = {**request.META, "wsgi.url_scheme": request.scheme}
        return wsgi_request(environ, self.options.headers, is_sensitive_header,
                            route=getattr(match, "route", None))

    def user_of(self, request: Any) -> Optional[str]:
        """The authenticated user's primary key, when ``user_id`` is on."""
        if not self.user_id:
            return None
        try:
            user = getattr(request, "user", None)
            return str(user.pk) if user is not None and user.is_authenticated else None
        except Exception:  # the session store may be down: no user id, still a report
            return None

    def report(self, request: Any, exc_info: ExcInfo, status: int = 500) -> None:
        """Report an exception raised while serving ``request``, answered with ``status``."""
        request.META[REPORTED] = True
        match = getattr(request, "resolver_match", None)
        view = getattr(match, "view_name", None)
        self.options.report_exception(exc_info, partial(self.describe, request),
                                      self.user_of(request), {"view": view} if view else None,
                                      status)

    def report_status(self, request: Any, response: Any) -> None:
        """Report ``response`` when its status was asked for and no report explains it."""
        status = getattr(response, "status_code", None)
        if status in self.options.report_http_status and not request.META.get(REPORTED):
            match = getattr(request, "resolver_match", None)
            self.options.report_status(status, getattr(match, "func", None),
                                       partial(self.describe, request), self.user_of(request))

    def reported_status(self, exception: BaseException) -> Optional[int]:
        """The status Django answers ``exception`` with when it is reported (errors, and
        statuses asked for), else None."""
        status = status_of(exception)
        return status if status == 500 or status in self.options.report_http_status else None

    @never_raises
    def got_exception(self, sender: Any, request: Any = None, **extra: Any) -> None:
        """``got_request_exception``: Django is answering an exception with a 500."""
        exc_info = sys.exc_info()
        if request is not None and exc_info[1] is not None:
            self.report(request, exc_info)

    @never_raises
    def started(self, sender: Any, environ: Optional[Mapping[str, Any]] = None,
                scope: Optional[Mapping[str, Any]] = None, **extra: Any) -> None:
        """``request_started``: a fresh scope, describing this request."""
        headers = self.options.headers
        if environ is not None:
            source = partial(wsgi_request, environ, headers, is_sensitive_header)
        elif scope is not None:
            source = partial(asgi_request, scope, headers, is_sensitive_header)
        else:
            source = None
        scopes.enter(scopes.Scope(request=source))

    @never_raises
    def finished(self, sender: Any, **extra: Any) -> None:
        """``request_finished``: what was set for the request ends with it."""
        scopes.enter(scopes.EMPTY_SCOPE)


_installed: list[DjangoIntegration] = []


def connect(settings: Mapping[str, Any]) -> DjangoIntegration:
    """Configure the client from ``settings`` (``FLAWLESS``) and connect the receivers."""
    from django.core.exceptions import ImproperlyConfigured
    from django.core.signals import got_request_exception, request_finished, request_started

    client_settings = {name: value for name, value in settings.items()
                       if name not in WEB_SETTINGS}
    if client_settings:  # else the client in use stays (installed by the project, or the
        try:             # environment's)
            flawless.client.install(**client_settings)
        except (TypeError, ValueError) as error:
            raise ImproperlyConfigured(f"FLAWLESS: {error}") from error
    integration = DjangoIntegration(
        WebOptions.of(settings.get("report_http_status", ()),
                      settings.get("headers", WebOptions().headers),
                      settings.get("error_threshold")),
        bool(settings.get("user_id", False)))
    got_request_exception.connect(integration.got_exception, weak=False,
                                  dispatch_uid="flawless.got_exception")
    request_started.connect(integration.started, weak=False, dispatch_uid="flawless.started")
    request_finished.connect(integration.finished, weak=False, dispatch_uid="flawless.finished")
    _installed[:] = [integration]
    return integration


def installed() -> DjangoIntegration:
    """The integration connected by the app."""
    from django.core.exceptions import ImproperlyConfigured

    if not _installed:
        raise ImproperlyConfigured('add "flawless.client.django" to INSTALLED_APPS')
    return _installed[0]
