"""PURE: the weeks (Monday, UTC) and days (UTC) errors are counted in."""

from __future__ import annotations

import datetime


def week_start(timestamp: float) -> str:
    """The Monday (UTC) of the week holding ``timestamp``, as YYYY-MM-DD."""
    day = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date()
    return (day - datetime.timedelta(days=day.weekday())).isoformat()


def day_of(timestamp: float) -> str:
    """The UTC day holding ``timestamp``, as YYYY-MM-DD."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date().isoformat()


def week_timestamp(week: str) -> int:
    """Epoch seconds of 00:00 UTC on the Monday ``week`` (YYYY-MM-DD)."""
    day = datetime.date.fromisoformat(week)
    return int(datetime.datetime(day.year, day.month, day.day,
                                 tzinfo=datetime.timezone.utc).timestamp())
