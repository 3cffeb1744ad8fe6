"""HTTP through twisted.web's own parser and Site over an in-memory transport: the real
request handling, no socket, no thread."""

from __future__ import annotations

import http.client
import io
from typing import Any, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import server


class Response:
    """One HTTP answer."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8")


class _Socket:
    def __init__(self, data: bytes):
        self._file = io.BytesIO(data)

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return self._file


class Exchange:
    """One connection to ``site``: bytes in, and the answer once the site has written it."""

    def __init__(self, site: server.Site, client_host: str = "127.0.0.1"):
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", client_host, 40000))
        self.channel = site.buildProtocol(self.transport.getPeer())
        self.channel.makeConnection(self.transport)

    def send(self, raw: bytes) -> "Exchange":
        self.channel.dataReceived(raw)
        return self

    def answered(self) -> bool:
        return b"\r\n\r\n" in self.transport.value()

    def response(self) -> Response:
        answer = http.client.HTTPResponse(_Socket(self.transport.value()))  # type: ignore
        answer.begin()
        return Response(answer.status, answer.headers, answer.read())

    def close(self) -> None:
        self.channel.connectionLost(None)


def raw_request(method: str, path: str, body: bytes = b"",
                headers: Optional[dict[str, str]] = None) -> bytes:
    """The bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: flawless.test", "Connection: close"]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
