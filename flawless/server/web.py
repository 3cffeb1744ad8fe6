"""Dashboard pages over the store."""

from __future__ import annotations

import json
from typing import Any

from twisted.web import resource, server


class HealthResource(resource.Resource):
    """``/check_health``: JSON status; never shows a secret."""

    isLeaf = True

    def __init__(self, app: Any):
        super().__init__()
        self._app = app

    def render_GET(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Gather the status in a reader thread and answer with JSON."""
        def answer(status: dict) -> None:
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            request.write(json.dumps(status).encode())
            request.finish()

        def failed(failure: Any) -> None:
            request.setResponseCode(503)
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps({"status": "error",
                                      "reason": failure.getErrorMessage()}).encode())
            request.finish()

        self._app.read_call(self._app.health).addCallbacks(answer, failed)
        return server.NOT_DONE_YET


class PlaceholderPage(resource.Resource):
    """``/``: a short page until the dashboard lands."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """A plain page that says the server runs."""
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return b"<!doctype html><title>flawless</title><h1>flawless is running</h1>"


def build_web_root(app: Any) -> resource.Resource:
    """The dashboard's resource tree."""
    root = resource.Resource()
    root.putChild(b"", PlaceholderPage())
    root.putChild(b"check_health", HealthResource(app))
    return root
