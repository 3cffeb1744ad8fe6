"""The ingest keys: which one a request on the report port authenticates with.

Asked twice per request: once when its headers are complete, so that a body without a
valid key is refused before it is read (see :mod:`flawless.server.connections`), and by the
endpoint itself, whose rate limit counts per key.

A key is offered as each way in offers it: ``Authorization: Bearer KEY`` (JSON-RPC), a
Sentry SDK's ``X-Sentry-Auth: Sentry sentry_key=KEY, ...`` (or the same after
``Authorization:``) or ``?sentry_key=KEY`` (browser SDKs), a page's ``?key=KEY``.
"""

from __future__ import annotations

import hmac
import urllib.parse
from typing import Iterable, Optional

from twisted.web import server

from flawless.server.core.envelope import auth_key

QUERY_KEYS = ("sentry_key", "key")


def _query(request: server.Request) -> str:
    """The request's query string, also while only its headers are read (twisted.web sets
    ``uri`` later; until then the channel holds the request line's path)."""
    uri = request.uri
    if uri == server.Request.uri:   # b"(no uri yet)"
        uri = getattr(request.channel, "_path", None) or b""
    return uri.partition(b"?")[2].decode("latin-1")


def offered_key(request: server.Request) -> Optional[bytes]:
    """The key a request offers, in whichever form its way in sends it, or None."""
    header = request.getHeader(b"authorization") or b""
    scheme, _, value = header.partition(b" ")
    if scheme.lower() == b"bearer":
        return value.strip()
    sentry = request.getHeader(b"x-sentry-auth") or (header if scheme.lower() == b"sentry"
                                                      else b"")
    if sentry:
        found = auth_key(sentry.decode("latin-1"))
        if found:
            return found.encode("latin-1")
    query = dict(reversed(urllib.parse.parse_qsl(_query(request))))  # the first of each
    for name in QUERY_KEYS:
        if query.get(name):
            return query[name].encode("latin-1", "replace")
    return None


class IngestKeys:
    """The configured keys; with none, no request needs one."""

    def __init__(self, keys: Iterable[str]):
        self._keys = tuple(key.encode() for key in keys)

    @property
    def required(self) -> bool:
        """Whether every request must carry a key."""
        return bool(self._keys)

    def key_of(self, request: server.Request) -> Optional[bytes]:
        """The key a request authenticates with (b"" when none is required), or None when
        it carries no valid one. Compared in constant time."""
        if not self._keys:
            return b""
        key = offered_key(request)
        if not key:
            return None
        for known in self._keys:
            if hmac.compare_digest(key, known):
                return known
        return None

    def authorized(self, request: server.Request) -> bool:
        """Whether the request may send a body."""
        return self.key_of(request) is not None
