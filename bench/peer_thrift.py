"""The original Flawless's Thrift protocol, for scripts run by the peer's virtualenv python.

Imports the peer's generated classes, so import this module only inside that virtualenv.
"""

from __future__ import annotations

from typing import Any, Optional

from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

from flawless.server.api import Flawless
from flawless.server.api.ttypes import RecordErrorRequest, StackLine


def record_error_request(report: dict[str, Any], **fields: Any) -> RecordErrorRequest:
    """A wire report (see payloads.py) as the peer's RecordErrorRequest; ``fields`` override."""
    values = {"traceback": [StackLine(**frame) for frame in report["traceback"]],
              "exception_message": report["exception_message"],
              "hostname": report.get("hostname"),
              "additional_info": report.get("additional_info"),
              "error_count": report.get("error_count", 1),
              "exception_type": report["exception_type"]}
    values.update(fields)
    return RecordErrorRequest(**values)


def encoded_record_error(report: dict[str, Any]) -> bytes:
    """One framed ``record_error`` call, ready to write on a connection. The generated client
    always sends sequence id 0, so a message can be encoded once and sent many times."""
    memory = TTransport.TMemoryBuffer()
    writer = Flawless.Client(TBinaryProtocol.TBinaryProtocol(TTransport.TFramedTransport(memory)))
    writer.send_record_error(record_error_request(report))
    return memory.getvalue()


def connect(port: int, timeout_ms: Optional[int] = 30000
            ) -> tuple[TSocket.TSocket, Flawless.Client]:
    """An open framed connection to the peer on 127.0.0.1 (no timeout when ``timeout_ms`` is
    None): its socket and a client on it."""
    sock = TSocket.TSocket("127.0.0.1", port)
    if timeout_ms is not None:
        sock.setTimeout(timeout_ms)
    transport = TTransport.TFramedTransport(sock)
    client = Flawless.Client(TBinaryProtocol.TBinaryProtocol(transport))
    transport.open()
    return sock, client
