"""The ingest keys: which one a request on the report port authenticates with.

Asked twice per request: once when its headers are complete, so that a body without a
valid key is refused before it is read (see :mod:`flawless.server.connections`), and by the
endpoint itself, whose rate limit counts per key.
"""

from __future__ import annotations

import hmac
from typing import Iterable, Optional

from twisted.web import server


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
        header = request.getHeader(b"authorization") or b""
        scheme, _, key = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        key = key.strip()
        for known in self._keys:
            if hmac.compare_digest(key, known):
                return known
        return None

    def authorized(self, request: server.Request) -> bool:
        """Whether the request may send a body."""
        return self.key_of(request) is not None
