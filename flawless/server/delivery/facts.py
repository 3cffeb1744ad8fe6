"""What every channel says of an alert, as plain values (the email has its own templates).

Texts here are raw (control characters aside): each channel's renderer escapes them for its
own markup and bounds them to its own limits.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from flawless.server.core.channels import error_fingerprint
from flawless.server.core.text import counted
from flawless.server.delivery import render


@dataclass(frozen=True)
class FrameFact:
    """One line of the traceback."""

    filename: str
    line_number: int
    function_name: str
    text: str
    blamed: bool


@dataclass(frozen=True)
class CommitFact:
    """The suspect commit: what git blame knows of the blamed line."""

    sha: str
    author_name: str
    author_email: str
    summary: str
    committed_at: float


@dataclass(frozen=True)
class AlertFacts:
    """One alert of one error."""

    fingerprint: str
    exception_type: str     # module-qualified
    short_type: str         # the class name alone
    message: str
    path: str               # the blamed repository path (or the innermost frame's)
    line_number: int
    where: str              # PATH:LINE, or where in a notebook's cell
    function_name: str
    hostname: str
    revision: Optional[str]
    commit: Optional[CommitFact]
    count: int
    first_seen: float
    last_seen: float
    url: str                # the error's page on the dashboard
    title: str              # one line: TYPE in FUNCTION (PATH:LINE) on HOST
    frames: tuple[FrameFact, ...]
    recipients: tuple[str, ...]


def alert_facts(alert: render.Alert) -> AlertFacts:
    """The facts of ``alert`` (made safe of control characters, not yet bounded)."""
    report = alert.report
    path, line = render.alert_place(alert)
    blame = alert.blame
    commit = CommitFact(blame.commit_sha, render.body_text(blame.author_name),
                        blame.author_email, render.body_text(blame.commit_summary),
                        blame.commit_timestamp) if blame is not None else None
    base_url = alert.base_url.rstrip("/")
    return AlertFacts(
        fingerprint=error_fingerprint(alert.route.key),
        exception_type=render.body_text(report.exception_type),
        short_type=render.body_text(report.exception_type.rpartition(".")[2]
                                    or report.exception_type),
        message=render.body_text(report.exception_message),
        path=render.body_text(path), line_number=line,
        where=render.body_text(render.alert_location(alert)),
        function_name=render.body_text(alert.route.blamed.frame.function_name
                                       if alert.route.blamed else
                                       alert.route.frames[-1].frame.function_name),
        hostname=render.body_text(report.hostname or "unknown host"),
        revision=report.revision, commit=commit, count=alert.count,
        first_seen=alert.first_seen, last_seen=alert.last_seen,
        url=f"{base_url}/view_traceback?{render.error_query(alert)}",
        title=render.alert_subject(alert),
        frames=tuple(FrameFact(render.body_text(item.frame.filename), item.frame.line_number,
                               render.body_text(item.frame.function_name),
                               render.body_text(item.frame.text.strip()),
                               index == alert.route.blamed_index)
                     for index, item in enumerate(alert.route.frames)),
        recipients=tuple(recipient.email for recipient in alert.decision.recipients))


def iso_utc(timestamp: float) -> str:
    """A UTC time for machines: 2026-11-02T10:00:00Z."""
    moment = datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, a cut marked with an ellipsis."""
    return text if len(text) <= limit else text[:max(0, limit - 1)] + "…"


def summary(title: str, count: Optional[int], url: str) -> str:
    """What a digest says of one held entry (JSON stored with the entry)."""
    return json.dumps({"title": title, "count": count, "url": url}, ensure_ascii=False)


@dataclass(frozen=True)
class Held:
    """One entry as a digest lists it."""

    title: str
    count: Optional[int]
    url: str


def read_summary(text: str) -> Held:
    """The stored summary of a held entry (an unreadable one still counts, as a blank)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    count = data.get("count")
    return Held(str(data.get("title") or "an alert"),
                count if isinstance(count, int) else None, str(data.get("url") or ""))


def held_lines(held: Sequence[Held], limit: int, line: Callable[[Held], str],
               more: Callable[[int], str]) -> list[str]:
    """A digest's list: ``line(item)`` for the first ``limit`` items, then ``more(n)`` for
    the ``n`` left out, if any."""
    lines = [line(item) for item in held[:limit]]
    if len(held) > limit:
        lines.append(more(len(held) - limit))
    return lines


def occurrences(item: Held) -> str:
    """How many occurrences a held alert stood for, in words ("" when unknown)."""
    return counted(item.count, "occurrence") if item.count is not None else ""
