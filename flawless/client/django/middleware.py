"""Optional: ``"flawless.client.django.middleware.FlawlessMiddleware"`` in ``MIDDLEWARE``.

Gives the reports made while serving a request (``record_error`` and ``record_message`` in
views included) the request's route, and reports responses whose status is in
``report_http_status`` without an exception to explain them. Works in sync and async
stacks. Needs ``"flawless.client.django"`` in ``INSTALLED_APPS``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from flawless.client import scope as scopes
from flawless.client.django.integration import installed
from flawless.client.guard import never_raises


class FlawlessMiddleware:
    """Django middleware: the request's scope, its exceptions and its status."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.integration = installed()
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._serve_async(request)
        token = scopes.enter(self._scope(request))
        try:
            response = self.get_response(request)
        finally:
            scopes.leave(token)
        self._check_status(request, response)
        return response

    async def _serve_async(self, request: Any) -> Any:
        token = scopes.enter(self._scope(request))
        try:
            response = await self.get_response(request)
        finally:
            scopes.leave(token)
        self._check_status(request, response)
        return response

    def _scope(self, request: Any) -> scopes.Scope:
        return scopes.Scope(request=partial(self.integration.describe, request))

    @never_raises
    def _check_status(self, request: Any, response: Any) -> None:
        self.integration.report_status(request, response)

    @never_raises
    def process_exception(self, request: Any, exception: BaseException) -> None:
        """A view raised: report it when Django will answer with a 500 (or a status asked
        for); Django goes on answering it as usual."""
        status = self.integration.reported_status(exception)
        if status is not None:
            self.integration.report(request, (type(exception), exception,
                                              exception.__traceback__), status)
