"""The values storage hands the other stages, and the stored form of a report."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Optional, Union

import msgspec

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
    """An outbox entry waiting for delivery: an alert (or a notice, or a digest) rendered
    for its channel (``message``: an email message, a Slack or webhook JSON body, an issue
    document) and its destination."""

    mail_id: int
    message: bytes
    recipients: tuple[str, ...]
    attempts: int
    channel: str = "email"
    destination: str = ""    # whom the hourly bounds count it against; see NewEntry
    message_id: str = ""     # stable across retries: a repeat after a crash is recognisable
    interrupted: bool = False  # a delivery began and its outcome was never recorded


@dataclass(frozen=True)
class NewEntry:
    """An outbox entry to queue.

    ``destination`` names where it goes within its channel: the recipient of a mail, a
    webhook by :func:`~flawless.server.core.channels.url_destination`, a repository. The
    hourly bounds and a far end's "wait" apply per destination. ``summary`` is JSON
    (``title``, ``count``, ``url``): what a digest says of it when it is held back.
    """

    channel: str
    destination: str
    message: bytes
    recipients: tuple[str, ...]
    message_id: str
    summary: str
    error_id: Optional[int] = None


@dataclass(frozen=True)
class HeldEntry:
    """An entry held back by the hourly bounds, waiting for its digest."""

    entry_id: int
    channel: str
    destination: str
    summary: str
    created_at: float


@dataclass(frozen=True)
class IssueLink:
    """The issue of an error in an issue tracker (GitHub, GitLab)."""

    channel: str
    destination: str
    fingerprint: str
    number: int
    url: str


@dataclass(frozen=True)
class Delivery:
    """Where an alert of an error went, for its page."""

    channel: str
    destination: str
    created_at: float
    sent_at: Optional[float]
    attempts: int
    last_error: Optional[str]
    held_until: Optional[float]
    digest_id: Optional[int]


@dataclass(frozen=True)
class ChannelState:
    """One channel's outbox, for /check_health."""

    channel: str
    pending: int        # waiting for delivery (held entries included)
    held: int           # held back by the hourly bounds, for a digest
    failing: int        # pending and tried at least once
    last_error: Optional[str]


@dataclass(frozen=True)
class ServerInfo:
    """One server of those sharing a database, as its heartbeat row tells."""

    server_id: str
    hostname: str
    pid: int
    version: str
    started_at: float
    seen_at: float


@dataclass(frozen=True)
class WeekTotals:
    """A week's occurrences, distinct errors and blamed developers, from kept counts."""

    occurrences: int
    errors: int
    developers: int


class _Params(msgspec.Struct):
    report: msgspec.Raw


class _Call(msgspec.Struct):
    method: str
    params: Union[_Params, list[msgspec.Raw]]


class _User(msgspec.Struct):
    id: str


class _UserOf(msgspec.Struct):
    user: Optional[_User] = None


# The inbox holds only bodies whose reports are in their stored form (ingest checked and,
# where needed, trimmed them), so they are decoded straight into Reports, with no second
# validation: 15 times faster than parse_report. Anything else takes the careful path.
# Every field of the wire is the dataclass field of that name, but for ``user``: {"id": ...}
# on the wire, ``user_id`` in the Report.
_STORED_BODY = msgspec.json.Decoder(Union[list[_Call], _Call])
_REPORT = msgspec.json.Decoder(Report)
_USER = msgspec.json.Decoder(_UserOf)
_ENCODER = msgspec.json.Encoder()


def _stored_report(raw: msgspec.Raw) -> Report:
    report = _REPORT.decode(raw)
    user = _USER.decode(raw).user
    return report if user is None else replace(report, user_id=user.id)


@dataclass(frozen=True)
class SourceMapFile:
    """The source map of one script of a build, and the script itself when it was given
    (function names are read from it)."""

    url: str                    # as frames name the script: a URL, or a path from the root
    map: bytes
    generated: Optional[bytes] = None


def reports_in_payload(payload: bytes) -> tuple[Report, ...]:
    """The valid reports of a stored JSON-RPC body (its ``record_error`` calls)."""
    try:
        decoded = _STORED_BODY.decode(payload)
        reports = []
        for call in decoded if isinstance(decoded, list) else (decoded,):
            if call.method != "record_error":
                continue
            if isinstance(call.params, _Params):
                reports.append(_stored_report(call.params.report))
            elif len(call.params) == 1:
                reports.append(_stored_report(call.params[0]))
        return tuple(reports)
    except (msgspec.DecodeError, ValueError):
        return _checked_reports(payload)


def _checked_reports(payload: bytes) -> tuple[Report, ...]:
    """The valid reports of a body that is not in the stored form, each checked."""
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
    return _ENCODER.encode(report_to_dict(report)).decode("utf-8")


def decode_report(text: str) -> Report:
    """Read back a report stored by :func:`encode_report`."""
    return parse_report(json.loads(text))
