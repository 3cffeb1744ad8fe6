"""HTTP bounds of the report port: bodies over the limit are refused before they are read.

A declared Content-Length over the limit (or a chunked body growing past it) is answered 413
and the connection closed at once, without reading or buffering the rest.
"""

from __future__ import annotations

import io
import zlib
from typing import Optional

from twisted.web import server


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


def make_bounded_request(max_body_bytes: int) -> type:
    """A twisted.web Request class that refuses a body beyond ``max_body_bytes`` at once.

    A declared Content-Length over the limit (or a chunked body growing past it) is
    answered 413 and the connection closed, without reading or buffering the rest.
    """
    refusal = (f"413 Payload Too Large: the limit is {max_body_bytes} bytes after "
               "decompression\n").encode()
    raw_refusal = (b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n"
                   + f"Content-Length: {len(refusal)}\r\n\r\n".encode() + refusal)

    class BoundedRequest(server.Request):
        body_too_large = False
        _received = 0

        def _refuse(self) -> None:
            if not self.body_too_large:
                self.body_too_large = True
                self.channel.transport.write(raw_refusal)
                self.channel.transport.loseConnection()

        def gotLength(self, length: Optional[int]) -> None:  # noqa: N802 - Twisted API
            super().gotLength(0 if length is not None and length > max_body_bytes else length)
            # The body is bounded, so it stays in memory: twisted.web would spill a body
            # over 100 kB to a temporary file, a disk write and read for every batch.
            self.content = io.BytesIO()
            if length is not None and length > max_body_bytes:
                self._refuse()

        def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted API
            self._received += len(data)
            if self._received > max_body_bytes:
                self._refuse()
            if not self.body_too_large:
                super().handleContentChunk(data)

        def requestReceived(self, command: bytes, path: bytes,  # noqa: N802 - Twisted API
                            version: bytes) -> None:
            if not self.body_too_large:
                super().requestReceived(command, path, version)

    return BoundedRequest


def read_body(request: server.Request, max_body_bytes: int) -> bytes:
    """The request body, gunzipped when sent with Content-Encoding: gzip, within the limit."""
    if getattr(request, "body_too_large", False):
        raise BodyTooLarge()
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
