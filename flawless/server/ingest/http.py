"""The body of a request on the report port, gunzipped, within the configured limit.

A declared Content-Length over the limit (or a chunked body growing past it) was already
answered 413 before it was read (:func:`flawless.server.connections.make_guarded_request`).
"""

from __future__ import annotations

import zlib

from twisted.web import server


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


def read_body(request: server.Request, max_body_bytes: int) -> bytes:
    """The request body, gunzipped when sent with Content-Encoding: gzip, within the limit."""
    request.content.seek(0)
    body = request.content.read(max_body_bytes + 1)
    if len(body) > max_body_bytes:
        raise BodyTooLarge()
    encoding = (request.getHeader("content-encoding") or "identity").strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, max_body_bytes + 1)
        except zlib.error as error:
            raise ValueError(f"body is not valid gzip: {error}") from None
        if len(body) > max_body_bytes or inflater.unconsumed_tail:
            raise BodyTooLarge()
    elif encoding != "identity":
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    return body
