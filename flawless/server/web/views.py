"""PURE: what the pages show, computed from stored errors (no I/O, no Twisted)."""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from flawless.report import ChainedException, Frame, Report
from flawless.server.core.cell_frames import cell_function, cell_text, cell_where
from flawless.server.core.model import ErrorKey, ErrorRecord, Resolution
from flawless.server.storage.records import Delivery

CHART_DAYS = 56


@dataclass(frozen=True)
class DeveloperGroup:
    """The errors on one page of a week blamed on one developer (email None: blamed on
    nobody), with the developer's totals of the whole week."""

    email: Optional[str]
    name: str
    total: int                     # occurrences in the week
    errors_in_week: int            # distinct errors in the week
    errors: tuple[tuple[ErrorRecord, int], ...]


@dataclass(frozen=True)
class Page:
    """Which page of a list: its number, its size, and whether there are more."""

    number: int
    size: int
    has_next: bool
    count: Optional[int] = None    # how many pages in all, when known

    @property
    def offset(self) -> int:
        """Entries before this page."""
        return (self.number - 1) * self.size


def page_of(rows: list, number: int, size: int, total: Optional[int] = None
            ) -> tuple[list, Page]:
    """The first ``size`` of ``rows`` (fetched with one more, to tell whether a next page
    exists) and the page they make; ``total`` entries in all, when known."""
    count = None if total is None else max(1, -(-total // size))
    return rows[:size], Page(number, size, len(rows) > size, count)


@dataclass(frozen=True)
class Bar:
    """One day of the occurrence chart, in SVG coordinates."""

    day: str
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    """Occurrences per day as bars, with axis labels."""

    width: int
    height: int
    baseline: float
    bars: tuple[Bar, ...]
    peak: int
    ticks: tuple[tuple[float, str], ...]   # (x, label) at each week start


def format_time(timestamp: Optional[float]) -> str:
    """A UTC time for people: 2026-11-02 10:00 UTC."""
    if timestamp is None:
        return "–"
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_date(timestamp: Optional[float]) -> str:
    """A UTC date for people: 2026-11-02."""
    if timestamp is None:
        return "–"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date().isoformat()


def format_long_date(timestamp: float) -> str:
    """A UTC date spelt out: Monday, 16 November 2026."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return f"{moment:%A}, {moment.day} {moment:%B %Y}"


def format_age(timestamp: Optional[float], now: float) -> str:
    """How long ago: 'just now', '5 min ago', '3 h ago', '12 days ago'."""
    if timestamp is None:
        return ""
    seconds = max(0.0, now - timestamp)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return "1 day ago" if days == 1 else f"{days} days ago"


def link(path: str, **params: Any) -> str:
    """A dashboard URL with its query string (parameters that are None are left out)."""
    query = urllib.parse.urlencode({name: value for name, value in params.items()
                                    if value is not None})
    return f"{path}?{query}" if query else path


def error_params(record: ErrorRecord, timestamp: Optional[float] = None) -> dict[str, Any]:
    """The parameters naming one error in links, as the emails put them."""
    return {"filename": record.key.filename, "function_name": record.key.function_name,
            "line_number": record.line_number, "text": record.key.text,
            "timestamp": int(timestamp if timestamp is not None else record.last_seen)}


def author_key(email: Optional[str]) -> Optional[str]:
    """Whom an error is grouped under: its developer's address without case, or None."""
    return email.lower() if email else None


def leaderboard(rows: Iterable[tuple[ErrorRecord, int]],
                totals: Mapping[Optional[str], tuple[int, int]]) -> list[DeveloperGroup]:
    """A page of a week's errors grouped by blamed developer: developers by their week's
    occurrences (``totals``: author_key -> (occurrences, distinct errors)), each one's
    errors most frequent first."""
    groups: dict[Optional[str], list[tuple[ErrorRecord, int]]] = {}
    for record, count in rows:
        groups.setdefault(author_key(record.author_email), []).append((record, count))
    result = []
    for email, errors in groups.items():
        errors.sort(key=lambda pair: (-pair[1], -pair[0].last_seen))
        name = next((record.author_name for record, _ in errors if record.author_name),
                    email or "Blamed on nobody")
        on_page = sum(count for _, count in errors)
        total, distinct = totals.get(email, (on_page, len(errors)))
        result.append(DeveloperGroup(email, name, max(total, on_page),
                                     max(distinct, len(errors)), tuple(errors)))
    result.sort(key=lambda group: (-group.total, group.email is None, group.email or ""))
    return result


def daily_chart(counts: Sequence[tuple[str, int]], last_day: str, days: int = CHART_DAYS,
                width: int = 720, height: int = 170) -> Chart:
    """Bars for occurrences per day over ``days`` days ending on ``last_day``."""
    end = datetime.date.fromisoformat(last_day)
    by_day = dict(counts)
    left, right, top, bottom = 36.0, 8.0, 10.0, 24.0
    baseline = height - bottom
    slot = (width - left - right) / days
    peak = max([by_day.get((end - datetime.timedelta(days=n)).isoformat(), 0)
                for n in range(days)] + [1])
    bars, ticks = [], []
    for index in range(days):
        day = end - datetime.timedelta(days=days - 1 - index)
        count = by_day.get(day.isoformat(), 0)
        bar_height = (baseline - top) * count / peak
        x = left + index * slot
        bars.append(Bar(day.isoformat(), count, round(x + slot * 0.12, 2),
                        round(baseline - bar_height, 2), round(slot * 0.76, 2),
                        round(bar_height, 2)))
        if day.weekday() == 0:
            ticks.append((round(x, 2), day.strftime("%b %-d")))
    return Chart(width, height, baseline, tuple(bars), peak, tuple(ticks))


def error_json(record: ErrorRecord, week_count: Optional[int] = None) -> dict[str, Any]:
    """One error as plain JSON data for the API."""
    data: dict[str, Any] = {
        "id": record.error_id, "filename": record.key.filename,
        "function_name": record.key.function_name, "text": record.key.text,
        "line_number": record.line_number, "exception_type": record.exception_type,
        "exception_message": record.last_report.exception_message,
        "count": record.count, "first_seen": record.first_seen, "last_seen": record.last_seen,
        "blamed": record.blamed, "author_name": record.author_name,
        "author_email": record.author_email, "commit_sha": record.commit_sha,
        "commit_summary": record.commit_summary, "commit_timestamp": record.commit_timestamp,
        "known": record.known, "alerted_at": record.alerted_at,
        "recipients": list(record.recipients),
        "where": record_place(record)[0],
        "url": link("/view_traceback", **error_params(record)),
    }
    if week_count is not None:
        data["week_count"] = week_count
    return data


def resolution_json(resolution: Optional[Resolution]) -> Optional[dict[str, Any]]:
    """An error's resolution as plain JSON data (None: never marked resolved)."""
    if resolution is None:
        return None
    return {"resolved": resolution.resolved, **dataclasses.asdict(resolution)}


def _is_keyed_by(frame: Frame, key: ErrorKey, line_number: int) -> bool:
    """Whether ``frame`` is the line an error with this key and line number is known by."""
    cell = frame.cell
    if cell is not None:
        return (cell_function(frame) == key.function_name and cell_text(cell) == key.text
                and (cell.notebook or frame.filename).replace("\\", "/").endswith(key.filename))
    return (frame.function_name == key.function_name and frame.line_number == line_number
            and frame.filename.replace("\\", "/").endswith(key.filename))


def _exceptions(report: Report) -> tuple[Union[Report, ChainedException], ...]:
    """A report's exception and its chain, the nearest first."""
    return (report, *report.chained)


def blamed_frame(record: ErrorRecord, report: Report) -> Optional[tuple[int, int]]:
    """Which frame of one of the error's reports is the blamed one, if it can be told: (0
    for the reported exception, n for its n-th chained one; the frame's index in it)."""
    for number, exception in enumerate(_exceptions(report)):
        for index in range(len(exception.traceback) - 1, -1, -1):
            if _is_keyed_by(exception.traceback[index], record.key, record.line_number):
                return number, index
    return None


def exception_sections(record: ErrorRecord, report: Report
                       ) -> list[tuple[Union[Report, ChainedException], Optional[int]]]:
    """Each exception of one of the error's reports with the index of its blamed frame (if
    it holds it), the one raised first first, as Python prints them."""
    blamed = blamed_frame(record, report)
    return [(exception, blamed[1] if blamed is not None and blamed[0] == number else None)
            for number, exception in reversed(list(enumerate(_exceptions(report))))]


def record_place(record: ErrorRecord) -> tuple[str, str]:
    """Where an error's line is (``PATH:LINE``, or ``PATH, cell 7 (id ...), line 3`` for a
    line in a notebook's cell) and its function."""
    blamed = blamed_frame(record, record.last_report)
    frame = _exceptions(record.last_report)[blamed[0]].traceback[blamed[1]] \
        if blamed is not None else None
    if frame is not None and frame.cell is not None:
        return cell_where(frame.cell, record.key.filename), frame.function_name
    return f"{record.key.filename}:{record.line_number}", record.key.function_name


@dataclass(frozen=True)
class DeliveryView:
    """Where one alert of an error went, in words."""

    channel: str
    destination: str
    queued: str
    status: str
    delivered: bool


def delivery_view(delivery: Delivery) -> DeliveryView:
    """How the error page shows one outbox entry of the error."""
    if delivery.digest_id is not None:
        status = f"held back by the hourly bound; sent in a digest at " \
                 f"{format_time(delivery.sent_at)}"
    elif delivery.sent_at is not None:
        status = f"sent {format_time(delivery.sent_at)}"
    elif delivery.held_until is not None:
        status = f"held back by the hourly bound until {format_time(delivery.held_until)}"
    elif delivery.attempts:
        status = f"not delivered yet ({delivery.attempts} attempts): {delivery.last_error}"
    else:
        status = "waiting"
    return DeliveryView(delivery.channel, delivery.destination,
                        format_time(delivery.created_at), status,
                        delivery.sent_at is not None)
