"""The values storage hands the other stages, and the stored form of a report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from flawless.report import InvalidReport, Report, parse_report, report_to_dict


class StorageUnavailable(Exception):
    """The database cannot take writes right now (disk full, locked, read-only)."""


@dataclass(frozen=True)
class InboxItem:
    """One accepted request's reports, waiting to be processed together."""

    inbox_id: int
    received_at: float
    reports: tuple[Report, ...]
    attempts: int


@dataclass(frozen=True)
class OutboxMail:
    """An alert rendered for its channel (an email message today), waiting for delivery."""

    mail_id: int
    message: bytes
    recipients: tuple[str, ...]
    attempts: int
    channel: str = "email"


@dataclass(frozen=True)
class SourceMapFile:
    """The source map of one script of a build, and the script itself when it was given
    (function names are read from it)."""

    url: str                    # as frames name the script: a URL, or a path from the root
    map: bytes
    generated: Optional[bytes] = None


def reports_in_payload(payload: bytes) -> tuple[Report, ...]:
    """The valid reports of a stored JSON-RPC body (its ``record_error`` calls)."""
    body = json.loads(payload)
    reports = []
    for call in (body if isinstance(body, list) else [body]):
        if not isinstance(call, dict) or call.get("method") != "record_error":
            continue
        params = call.get("params")
        data = params.get("report") if isinstance(params, dict) else \
            params[0] if isinstance(params, list) and len(params) == 1 else None
        try:
            reports.append(parse_report(data))
        except InvalidReport:
            continue  # answered with an error when it arrived; nothing to process
    return tuple(reports)


def encode_report(report: Report) -> str:
    """The stored form of a report: its wire JSON."""
    return json.dumps(report_to_dict(report), separators=(",", ":"), ensure_ascii=False)


def decode_report(text: str) -> Report:
    """Read back a report stored by :func:`encode_report`."""
    return parse_report(json.loads(text))
