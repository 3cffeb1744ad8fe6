"""The report port's resources: every way in, over one gate."""

from __future__ import annotations

from typing import Sequence

from twisted.web import resource

from flawless.server.ingest.browser import BrowserReports, ClientScript
from flawless.server.ingest.cors import Cors
from flawless.server.ingest.gate import IngestGate
from flawless.server.ingest.rpc import RpcResource
from flawless.server.ingest.sentry import SentryApi


def build_report_root(gate: IngestGate, max_body_bytes: int,
                      allowed_origins: Sequence[str]) -> resource.Resource:
    """``/rpc`` (and ``/``) for JSON-RPC, ``/api/PROJECT_ID/...`` for Sentry SDKs,
    ``/browser`` and ``/flawless.js`` for pages."""
    rpc = RpcResource(gate, max_body_bytes)
    cors = Cors(allowed_origins)
    root = resource.Resource()
    # ``/rpc``, and ``/`` for clients configured with the bare host:port.
    root.putChild(b"rpc", rpc)
    root.putChild(b"", rpc)
    root.putChild(b"api", SentryApi(gate, max_body_bytes, cors))
    root.putChild(b"browser", BrowserReports(gate, max_body_bytes, cors))
    root.putChild(b"flawless.js", ClientScript())
    return root
