"""CORS for the ways in that pages use (``/browser``, and Sentry's browser SDKs): only the
origins in ``allowed_origins`` may report, each answer echoes the origin it allows and says
``Vary: Origin`` so that no cache hands one origin's answer to another."""

from __future__ import annotations

from typing import Optional, Sequence

from twisted.web import server

ANY = "*"
PREFLIGHT_MAX_AGE = b"86400"


def normalise_origin(origin: str) -> str:
    """An origin as browsers send it: lower-case scheme and host, no trailing slash."""
    return origin.strip().rstrip("/").lower()


class Cors:
    """The origins allowed to report from a page."""

    def __init__(self, allowed_origins: Sequence[str]):
        self._allowed = frozenset(normalise_origin(origin) for origin in allowed_origins)

    def allows(self, origin: Optional[str]) -> bool:
        """Whether a page of ``origin`` may report (``*`` in the list allows any)."""
        if not origin:
            return False
        return ANY in self._allowed or normalise_origin(origin) in self._allowed

    def answer(self, request: server.Request, required: bool) -> bool:
        """Set the CORS headers of the answer; False when the request's origin is refused.

        ``required``: a request without an Origin header is refused too (a page's request
        always has one; only other clients, which have their own way in, send none)."""
        request.setHeader(b"vary", b"Origin")
        origin = (request.getHeader(b"origin") or b"").decode("latin-1")
        if not origin:
            return not required
        if not self.allows(origin):
            return False
        request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
        # so that a browser SDK can read how long to back off
        request.setHeader(b"access-control-expose-headers",
                          b"Retry-After, X-Sentry-Rate-Limits")
        return True

    def preflight(self, request: server.Request) -> bytes:
        """Answer an OPTIONS preflight: 204 for an allowed origin, 403 otherwise."""
        if not self.answer(request, required=True):
            request.setResponseCode(403)
            return b""
        request.setResponseCode(204)
        request.setHeader(b"access-control-allow-methods", b"POST, OPTIONS")
        request.setHeader(b"access-control-allow-headers",
                          b"Content-Type, Content-Encoding, X-Sentry-Auth")
        request.setHeader(b"access-control-max-age", PREFLIGHT_MAX_AGE)
        return b""
