"""HTTP bounds of the report port: bodies over the limit are refused before they are read.

A declared Content-Length over the limit (or a chunked body growing past it) is answered 413
and the connection closed at once, without reading or buffering the rest.
"""

from __future__ import annotations

import io
import zlib
from typing import Optional

import brotli
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


# Content-Encoding -> the zlib window bits that read it (deflate: zlib's format, as HTTP
# says; a raw deflate stream, as some clients send, is read as a fallback).
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
              "deflate": zlib.MAX_WBITS}


def _unbrotli(body: bytes, max_body_bytes: int) -> bytes:
    decompressor = brotli.Decompressor()
    try:
        inflated = decompressor.process(body, output_buffer_limit=max_body_bytes + 1)
    except brotli.error as error:
        raise ValueError(f"body is not valid br: {error}") from None
    if len(inflated) > max_body_bytes:
        raise BodyTooLarge()
    if not decompressor.is_finished():
        raise ValueError("body is not valid br: the stream is cut short")
    return inflated


def decompress(body: bytes, encoding: str, max_body_bytes: int) -> bytes:
    """``body`` decoded from ``encoding`` (identity, gzip, deflate or br), never inflating
    (much) past ``max_body_bytes``: a compression bomb costs that much memory, then
    BodyTooLarge. Raises ValueError for an unknown encoding or a stream that is broken or
    cut short."""
    if encoding == "identity":
        return body
    if encoding == "br":
        # sentry-python's default wherever the brotli module is installed
        return _unbrotli(body, max_body_bytes)
    if encoding not in _ENCODINGS:
        raise ValueError(f"unsupported Content-Encoding {encoding!r} "
                         "(use gzip, deflate or br)")
    inflater = zlib.decompressobj(wbits=_ENCODINGS[encoding])
    try:
        try:
            inflated = inflater.decompress(body, max_body_bytes + 1)
        except zlib.error:
            if encoding != "deflate":
                raise
            inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
            inflated = inflater.decompress(body, max_body_bytes + 1)
    except zlib.error as error:
        raise ValueError(f"body is not valid {encoding}: {error}") from None
    if len(inflated) > max_body_bytes or inflater.unconsumed_tail:
        raise BodyTooLarge()
    if not inflater.eof:
        raise ValueError(f"body is not valid {encoding}: the stream is cut short")
    return inflated


def read_body(request: server.Request, max_body_bytes: int) -> bytes:
    """The request body, decompressed (Content-Encoding gzip, deflate or br), within the
    limit."""
    if getattr(request, "body_too_large", False):
        raise BodyTooLarge()
    request.content.seek(0)
    body = request.content.read(max_body_bytes + 1)
    if len(body) > max_body_bytes:
        raise BodyTooLarge()
    encoding = (request.getHeader("content-encoding") or "identity").strip().lower()
    return decompress(body, encoding, max_body_bytes)


class Refused(Exception):
    """A request answered with an error ``status``; ``reason`` says why, for people."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bounded_body(request: server.Request, max_body_bytes: int) -> bytes:
    """The decompressed body, or Refused: 413 over the limit (the connection is then
    closed), 400 for an encoding that cannot be read."""
    try:
        return read_body(request, max_body_bytes)
    except BodyTooLarge:
        request.setHeader(b"connection", b"close")
        raise Refused(413, f"Payload Too Large: the limit is {max_body_bytes} bytes after "
                           "decompression") from None
    except ValueError as error:
        raise Refused(400, f"Bad Request: {error}") from None
