"""Render alerts and notices from templates/ as email messages (values in, messages out).

Everything a report or a commit carries is made safe here: header text cannot break a
header, body text carries no control characters, HTML is autoescaped by the templates.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import functools
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import urlencode

import jinja2

from flawless.report import MESSAGE_TYPE, Frame, Report, RequestInfo, trim
from flawless.server.core.cell_frames import blame_note, cell_where, frame_line, frame_where
from flawless.server.core.model import Blame, Decision, Route, RoutedFrame
from flawless.server.core.text import plural


MAX_SUBJECT_CHARS = 200
MAX_HEADER_CHARS = 998
HEADER_CUT_MARK = "..."
# Headers are bounded (a subject to 200 characters), so they never need folding; folded, a
# long word becomes encoded words that mail readers unfold with an extra space.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=MAX_HEADER_CHARS)
# Unicode categories that must never reach a header: controls (CR, LF, TAB...), format
# characters (bidi overrides that disguise text) and the line/paragraph separators.
_HEADER_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_BODY_KEPT_CONTROLS = frozenset("\n\t")


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """Everything an alert email shows about one error."""

    report: Report            # the latest occurrence
    route: Route
    blame: Optional[Blame]    # None when nothing in the repository could be blamed
    decision: Decision
    count: int                # occurrences so far
    first_seen: float         # seconds since epoch
    last_seen: float
    base_url: str             # dashboard base URL, no trailing slash
    error_id: Optional[int] = None


# -- text hygiene ----------------------------------------------------------------------------


def header_text(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    """``value`` fit for one header: control and separator characters become spaces,
    runs of whitespace fold to one, and the result is at most ``limit`` characters. A cut is
    marked with ASCII dots, so that an ASCII value stays plain ASCII."""
    cleaned = " ".join("".join(" " if unicodedata.category(char) in _HEADER_UNSAFE else char
                               for char in value).split())
    if len(cleaned) <= limit:
        return cleaned
    return cleaned[:limit - len(HEADER_CUT_MARK)] + HEADER_CUT_MARK


def body_text(value: str) -> str:
    """``value`` fit for a mail body: line breaks normalised, other control characters
    dropped (a stray CR or escape sequence must not garble the message or the terminal)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(char for char in value
                   if char in _BODY_KEPT_CONTROLS or unicodedata.category(char) != "Cc")


# -- templates -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    # The templates ship as the package flawless.templates, both in a wheel and in an
    # editable install of the checkout, so the package loader finds them in either.
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("flawless.templates", "."),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["plural"] = plural
    return environment


def _render(name: str, **values: Any) -> str:
    return _templates().get_template(name).render(**values)


# -- the alert view --------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameView:
    """One traceback line as the templates show it."""

    filename: str
    line_number: int
    function_name: str
    text: str
    frame_locals: tuple[tuple[str, str], ...]
    blamed: bool
    cell_where: Optional[str] = None  # "analysis.ipynb, cell 7 (id ...), line 3" in a cell
    column_number: Optional[int] = None   # JavaScript frames: shown as "line 4, column 10"


@dataclass(frozen=True)
class BlameView:
    """The blamed commit as the templates show it."""

    short_sha: str
    summary: str
    author_name: str
    author_email: str
    date: str
    head_fallback: Optional[str]   # sentence saying the blame ran at HEAD, when it did
    cell_note: Optional[str] = None  # how a notebook's cell line was found, or why not blamed
    heading: str = "Blamed commit"   # what the commit is: the blamed line's, or a cell's


def utc_time(timestamp: float) -> str:
    """A UTC time for people: 2026-11-02 10:00:00 UTC."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class ExceptionView:
    """One exception of the chain with its traceback, as the templates show it."""

    exception_type: str
    exception_message: str
    frames: tuple[FrameView, ...]


def _frame_views(frames: Sequence[Frame], blamed: Optional[int]) -> tuple[FrameView, ...]:
    """Frames as shown, the ``blamed``-th marked."""
    return tuple(
        FrameView(
            filename=body_text(frame.filename),
            line_number=frame.line_number,
            function_name=body_text(frame.function_name),
            text=body_text(frame.text.strip()),
            frame_locals=tuple((body_text(name), body_text(value))
                               for name, value in (frame.frame_locals or {}).items()),
            blamed=index == blamed,
            cell_where=body_text(frame_where(frame)) if frame.cell is not None else None,
            column_number=frame.column_number,
        )
        for index, frame in enumerate(frames))


def _exception_views(report: Report, route: Route) -> tuple[ExceptionView, ...]:
    """Every exception of the report's chain, the one raised first first (as Python prints
    them), the reported one last. The frames are the report's own (a route may be shared by
    the repeats of an error, whose locals differ), marked as the route decided."""
    def blamed(exception: int) -> Optional[int]:
        return route.blamed_index if exception == route.blamed_exception else None

    exceptions = (report, *report.chained)
    return tuple(ExceptionView(body_text(exception.exception_type),
                               body_text(exception.exception_message),
                               _frame_views(exception.traceback, blamed(number)))
                 for number, exception in reversed(list(enumerate(exceptions))))


def _blame_view(blame: Optional[Blame], report: Report,
                culprit: RoutedFrame) -> Optional[BlameView]:
    if blame is None:
        return None
    cell = culprit.frame.cell
    cell_note = body_text(blame_note(blame, cell)) if blame.cell is not None and cell else None
    head_fallback = None
    if not blame.at_requested_revision:
        asked = f" ({body_text(report.revision)})" if report.revision else ""
        head_fallback = (f"The blame ran at HEAD ({blame.revision[:12]}) because the report's "
                         f"revision{asked} was unknown to the repository.")
    return BlameView(short_sha=blame.commit_sha[:12], summary=body_text(blame.commit_summary),
                     author_name=body_text(blame.author_name),
                     author_email=body_text(blame.author_email),
                     date=utc_time(blame.commit_timestamp), head_fallback=head_fallback,
                     cell_note=cell_note,
                     heading="Blamed commit" if blame.cell is None or blame.cell.line else
                     "No line blamed; the cell's last change, commit")


def _culprit(alert: Alert) -> RoutedFrame:
    """The blamed frame, or the innermost one when nothing could be blamed."""
    return alert.route.blamed or alert.route.frames[-1]


def alert_place(alert: Alert) -> tuple[str, int]:
    """(path, line number) of the frame the alert is about: the blamed repository path, else
    the innermost frame's."""
    culprit = _culprit(alert)
    return (culprit.repo_path or culprit.rule_path or culprit.frame.filename,
            culprit.frame.line_number)


def alert_location(alert: Alert) -> str:
    """Where the line the alert is about is, in words: ``PATH:LINE``, or
    ``PATH, cell 7 (id ...), line 3`` in a notebook's cell."""
    culprit = _culprit(alert)
    path, line = alert_place(alert)
    if culprit.frame.cell is not None:
        return cell_where(culprit.frame.cell, path)
    return f"{path}:{line}"


def error_query(alert: Alert) -> str:
    """The urlencoded parameters naming this error on the dashboard's pages."""
    key = alert.route.key
    return urlencode({
        "filename": key.filename,
        "function_name": key.function_name,
        "line_number": frame_line(_culprit(alert).frame),
        "text": key.text,
        "timestamp": int(alert.last_seen),
    })


def alert_subject(alert: Alert) -> str:
    """``TYPE in FUNCTION (PATH:LINE) on HOSTNAME``, or for a message (``record_message``)
    ``Warning: TEXT (PATH:LINE) on HOSTNAME``, after ``Regression:`` when a fix regressed:
    two errors of one file never share a subject. Safe for a header and bounded."""
    report = alert.report
    host = f"on {report.hostname}" if report.hostname else "on an unknown host"
    if report.exception_type == MESSAGE_TYPE:
        text = trim(" ".join(report.exception_message.split()), 80)
        what = f"{report.level.capitalize()}: {text}"
    else:
        kind = report.exception_type.rpartition(".")[2] or report.exception_type
        what = f"{kind} in {_culprit(alert).frame.function_name}"
        if report.level != "error":
            what = f"{report.level.capitalize()}: {what}"
    regression = "Regression: " if alert.decision.regression else ""
    return header_text(f"{regression}{what} ({alert_location(alert)}) {host}",
                       MAX_SUBJECT_CHARS)


def _pairs(mapping: Optional[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((body_text(name), body_text(str(value)))
                 for name, value in (mapping or {}).items())


@dataclass(frozen=True)
class RequestView:
    """The request being served, as the templates show it."""

    line: str                                  # "POST https://host/order/7?coupon"
    route: Optional[str]
    headers: tuple[tuple[str, str], ...]


def _request_view(request: Optional[RequestInfo]) -> Optional[RequestView]:
    if request is None:
        return None
    line = " ".join(part for part in (request.method, request.url) if part)
    return RequestView(body_text(line), body_text(request.route) if request.route else None,
                       _pairs(request.headers))


def _alert_values(alert: Alert) -> dict[str, Any]:
    report = alert.report
    known_error = alert.route.known_error
    email_header = alert.decision.email_header or (known_error.email_header
                                                   if known_error else None)
    query = error_query(alert)
    base_url = alert.base_url.rstrip("/")
    return {
        "email_header": body_text(email_header) if email_header else None,
        "exception_type": body_text(report.exception_type),
        "exception_message": body_text(report.exception_message),
        "hostname": body_text(report.hostname or "unknown host"),
        "exceptions": _exception_views(report, alert.route),
        "blame": _blame_view(alert.blame, report, _culprit(alert)),
        "count": alert.count,
        "first_seen": utc_time(alert.first_seen),
        "last_seen": utc_time(alert.last_seen),
        "additional_info": body_text(report.additional_info) if report.additional_info else None,
        "context": _pairs(report.context),
        "level": body_text(report.level.capitalize()) if report.level != "error" else None,
        "request": _request_view(report.request),
        "tags": _pairs(report.tags),
        "user_id": body_text(report.user_id) if report.user_id is not None else None,
        "view_url": f"{base_url}/view_traceback?{query}",
        "known_error_url": f"{base_url}/add_known_error?{query}",
        "developer_url": (f"{base_url}/developer?{urlencode({'email': alert.blame.author_email})}"
                          if alert.blame else None),
        "recipients": tuple((body_text(recipient.email), body_text(recipient.reason))
                            for recipient in alert.decision.recipients),
        "regression": body_text(alert.decision.regression) if alert.decision.regression
        else None,
        "explanation": tuple(body_text(line) for line in (
            *alert.route.explanation, ("alert: " if alert.decision.alert else "no alert: ")
            + alert.decision.reason)),
    }


# -- messages --------------------------------------------------------------------------------


def _message_id_domain(sender: str) -> str:
    address = email.utils.parseaddr(header_text(sender))[1]
    domain = address.rpartition("@")[2]
    # make_msgid would otherwise ask the resolver for this host's name on every message.
    return domain if "@" in address and domain else "localhost"


def _new_message(subject: str, recipients: Sequence[str], sender: str,
                 now: Optional[float]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = header_text(subject, MAX_SUBJECT_CHARS)
    message["From"] = header_text(sender)
    message["To"] = ", ".join(header_text(address) for address in recipients)
    message["Date"] = email.utils.formatdate(now, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid("flawless", _message_id_domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    return message


def render_alert(alert: Alert, sender: str, now: Optional[float] = None) -> EmailMessage:
    """The alert email: plain text and HTML alternatives, addressed to the decision's
    recipients. ``now`` (seconds since epoch) sets the Date header; default: the clock."""
    message = _new_message(alert_subject(alert),
                           [recipient.email for recipient in alert.decision.recipients],
                           sender, now)
    values = _alert_values(alert)
    message.set_content(_render("email_alert.txt", **values))
    message.add_alternative(_render("email_alert.html", **values), subtype="html")
    return message


def render_note(subject: str, lines: Sequence[str], recipients: Sequence[str],
                sender: str) -> EmailMessage:
    """A short plain-text notice (a broken rule file, a dropped recipient...)."""
    message = _new_message(subject, recipients, sender, None)
    message.set_content(_render("email_note.txt", subject=body_text(subject),
                                lines=[body_text(line) for line in lines]))
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """The wire form of ``message`` (CRLF line ends), as the outbox stores it."""
    return message.as_bytes(policy=WIRE_POLICY)


def message_recipients(message: EmailMessage) -> tuple[str, ...]:
    """The bare addresses in ``message``'s To and Cc headers."""
    fields = [str(value) for name in ("To", "Cc") for value in message.get_all(name, [])]
    return tuple(address for _, address in email.utils.getaddresses(fields) if address)
