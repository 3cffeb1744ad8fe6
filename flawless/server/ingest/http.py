"""The body of a request on the report port, decompressed, within the configured limit.

A declared Content-Length over the limit (or a chunked body growing past it) was already
answered 413 before it was read (:func:`flawless.server.connections.make_guarded_request`).
"""

from __future__ import annotations

import zlib

import brotli
from twisted.web import server


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


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
