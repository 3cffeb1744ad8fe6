"""The read-only pages and their JSON twins: the week, one error, one developer.

Each handler checks its parameters on the reactor thread (a bad one is a 400 page), then
reads the database and renders in a reader thread. Every list is paged (``?page=N``,
``page_size`` entries), and a page's totals come from kept counts, so no page's work or
size grows with the number of errors.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Optional

from twisted.web import server

from flawless.report import Report, report_to_dict
from flawless.server.core.calendar import day_of, week_start, week_timestamp
from flawless.server.core.channels import error_fingerprint
from flawless.server.core.model import ErrorKey, ErrorRecord, Resolution
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner
from flawless.server.web.http import Answer, HttpError, Params, json_answer
from flawless.server.web.render import Renderer, Visitor
from flawless.server.web.views import (CHART_DAYS, Page, author_key, daily_chart,
                                       delivery_view, error_json, exception_sections,
                                       leaderboard, page_of, resolution_json)

API_DAYS = 366   # /api/error gives the daily counts of the last year


def error_key(params: Params, required: bool = True) -> tuple[ErrorKey, Optional[int]]:
    """The error a link names (file, function, line text) and its line number, if given."""
    key = ErrorKey(params.text("filename", required), params.text("function_name", required),
                   params.text("text"))
    return key, params.positive_int("line_number")


def find_error(storage: Storage, key: ErrorKey, line_number: Optional[int]) -> ErrorRecord:
    """The error a link names; by line number when its source text changed since."""
    record = storage.find_error(key)
    if record is None and line_number is not None:
        near = storage.errors_at_line(key.filename, key.function_name, line_number)
        record = near[0] if near else None
    if record is None:
        raise HttpError(404, f"No error is recorded at {key.filename}, function "
                             f"{key.function_name}. It may have been recorded by another "
                             "flawless server.")
    return record


class ReadPages:
    """Handlers of the read pages (behind a login when ``viewer_password`` is set)."""

    def __init__(self, storage: Storage, reader: Runner, renderer: Renderer,
                 visitor: Callable[[server.Request], Visitor], page_size: int = 100):
        self._storage = storage
        self._reader = reader
        self._renderer = renderer
        self._visitor = visitor
        self._page_size = page_size

    def _page_number(self, params: Params) -> int:
        return params.positive_int("page") or 1

    # -- the week --

    def _week(self, timestamp: Optional[float], include_known: bool, query: str,
              number: int) -> dict[str, Any]:
        now = self._renderer.now()
        week = week_start(now if timestamp is None else timestamp)
        start = week_timestamp(week)
        size, query = self._page_size, query.strip()
        totals = self._storage.week_totals(week, include_known)
        offset = (number - 1) * size
        found = self._storage.week_errors(week, include_known, offset, size + 1, query) \
            if query or offset < totals.errors else []
        rows, page = page_of(found, number, size, None if query else totals.errors)
        developers = {author_key(record.author_email): record.author_email
                      for record, _ in rows}
        groups = leaderboard(rows, {key: self._storage.developer_week_totals(
            week, email, include_known) for key, email in developers.items()})
        return {"week": week, "week_timestamp": start, "groups": groups, "totals": totals,
                "page": page, "previous_timestamp": start - 7 * 86400,
                "next_timestamp": start + 7 * 86400 if start + 7 * 86400 <= now else None,
                "include_known_errors": include_known, "query": query}

    def _weekly_page(self, visitor: Visitor, timestamp: Optional[float], include_known: bool,
                     query: str, number: int) -> Answer:
        return self._renderer.render("page_weekly.html", visitor,
                                     **self._week(timestamp, include_known, query, number))

    def _weekly_json(self, timestamp: Optional[float], include_known: bool,
                     query: str, number: int) -> dict[str, Any]:
        week = self._week(timestamp, include_known, query, number)
        return {"week": week["week"], "include_known_errors": include_known,
                "previous_timestamp": week["previous_timestamp"],
                "next_timestamp": week["next_timestamp"],
                "occurrences": week["totals"].occurrences,
                "distinct_errors": week["totals"].errors,
                **page_json(week["page"]),
                "developers": [{"email": group.email, "name": group.name, "total": group.total,
                                "distinct_errors": group.errors_in_week,
                                "errors": [error_json(record, count)
                                           for record, count in group.errors]}
                               for group in week["groups"]]}

    async def weekly(self, request: server.Request) -> Answer:
        """``/`` and ``/get_weekly_error_report``."""
        params = Params(request.args)
        return await self._reader.run(self._weekly_page, self._visitor(request),
                                      params.timestamp(), params.flag("include_known_errors"),
                                      params.text("q"), self._page_number(params))

    async def weekly_api(self, request: server.Request) -> Answer:
        """``/api/weekly_report``."""
        params = Params(request.args)
        return json_answer(await self._reader.run(
            self._weekly_json, params.timestamp(), params.flag("include_known_errors"),
            params.text("q"), self._page_number(params)))

    # -- one error --

    def _occurrence(self, record: ErrorRecord, timestamp: Optional[float]
                    ) -> tuple[str, Report, bool, int]:
        """The week a link names (that of the error's latest occurrence when it names none),
        the report shown for it (the last one of that week when it was kept, else the
        latest), whether that is the week's own, and the week's count."""
        latest_week = week_start(record.last_seen)
        week = latest_week if timestamp is None else week_start(timestamp)
        report = record.last_report if week == latest_week else \
            self._storage.week_report(record.error_id, week)
        count = self._storage.error_week_count(record.error_id, week)
        if report is None:
            return week, record.last_report, False, count
        return week, report, True, count

    def _traceback_page(self, visitor: Visitor, key: ErrorKey, line_number: Optional[int],
                        timestamp: Optional[float]) -> Answer:
        record = find_error(self._storage, key, line_number)
        week, report, of_week, week_count = self._occurrence(record, timestamp)
        last_day = day_of(self._renderer.now())
        since = (datetime.date.fromisoformat(last_day)
                 - datetime.timedelta(days=CHART_DAYS - 1)).isoformat()
        chart = daily_chart(self._storage.daily_counts(record.error_id, since), last_day)
        return self._renderer.render(
            "page_traceback.html", visitor, record=record, report=report, chart=chart,
            sections=exception_sections(record, report), week=week,
            week_timestamp=week_timestamp(week), of_week=of_week, week_count=week_count,
            latest_week=week_start(record.last_seen),
            resolution=self._resolution(record),
            deliveries=[delivery_view(delivery)
                        for delivery in self._storage.deliveries(record.error_id)],
            issues=self._storage.issue_links(error_fingerprint(record.key)))

    def _error_json(self, key: ErrorKey, line_number: Optional[int],
                    timestamp: Optional[float]) -> dict[str, Any]:
        record = find_error(self._storage, key, line_number)
        week, report, of_week, week_count = self._occurrence(record, timestamp)
        data = error_json(record)
        data["resolution"] = resolution_json(self._resolution(record))
        data.update(week=week, week_count=week_count, report_of_week=of_week,
                    report=report_to_dict(report), explanation=list(record.explanation))
        since = (datetime.date.fromisoformat(day_of(record.last_seen))
                 - datetime.timedelta(days=API_DAYS - 1)).isoformat()
        data["daily_counts"] = self._storage.daily_counts(record.error_id, since)
        data["deliveries"] = [delivery_view(delivery).__dict__
                              for delivery in self._storage.deliveries(record.error_id)]
        data["issues"] = [{"channel": link.channel, "destination": link.destination,
                           "number": link.number, "url": link.url}
                          for link in self._storage.issue_links(error_fingerprint(record.key))]
        return data

    def _resolution(self, record: ErrorRecord) -> Optional[Resolution]:
        return self._storage.resolutions([record.error_id]).get(record.error_id)

    async def traceback(self, request: server.Request) -> Answer:
        """``/view_traceback``."""
        params = Params(request.args)
        key, line_number = error_key(params)
        return await self._reader.run(self._traceback_page, self._visitor(request), key,
                                      line_number, params.timestamp())

    async def error_api(self, request: server.Request) -> Answer:
        """``/api/error``."""
        params = Params(request.args)
        key, line_number = error_key(params)
        return json_answer(await self._reader.run(self._error_json, key, line_number,
                                                  params.timestamp()))

    # -- one developer --

    def _developer(self, email: str, number: int) -> dict[str, Any]:
        size = self._page_size
        errors, page = page_of(self._storage.author_errors(email, (number - 1) * size,
                                                           size + 1), number, size)
        weeks = self._storage.author_weekly_totals(email, size)
        name = next((record.author_name for record in errors if record.author_name), email)
        return {"email": email, "name": name, "errors": errors, "page": page, "weeks": weeks,
                "total": sum(count for _, count, _ in weeks)}

    def _developer_page(self, visitor: Visitor, email: str, number: int) -> Answer:
        return self._renderer.render("page_developer.html", visitor,
                                     **self._developer(email, number))

    def _developer_json(self, email: str, number: int) -> dict[str, Any]:
        developer = self._developer(email, number)
        return {"email": email, **page_json(developer["page"]),
                "weeks": [{"week": week, "count": count, "distinct_errors": errors}
                          for week, count, errors in developer["weeks"]],
                "errors": [error_json(record) for record in developer["errors"]]}

    async def developer(self, request: server.Request) -> Answer:
        """``/developer``."""
        params = Params(request.args)
        email = params.text("email", required=True).strip()
        return await self._reader.run(self._developer_page, self._visitor(request), email,
                                      self._page_number(params))

    async def developer_api(self, request: server.Request) -> Answer:
        """``/api/developer``."""
        params = Params(request.args)
        email = params.text("email", required=True).strip()
        return json_answer(await self._reader.run(self._developer_json, email,
                                                  self._page_number(params)))

    async def api_index(self, request: server.Request) -> Answer:
        """``/api/``: what the API offers."""
        return json_answer({"page_size": self._page_size, "endpoints": {
            "/api/weekly_report": "timestamp, include_known_errors, q, page",
            "/api/error": "filename, function_name, text, line_number, timestamp",
            "/api/developer": "email, page",
            "/api/health": "",
            "POST /api/resolve": "filename, function_name, text, line_number, fix_commit "
                                 "(HTTP Basic authentication with the admin password)",
            "POST /api/reopen": "filename, function_name, text, line_number "
                                "(HTTP Basic authentication with the admin password)"}})


def page_json(page: Page) -> dict[str, Any]:
    """Where a list's page stands, for the API."""
    return {"page": page.number, "page_size": page.size, "pages": page.count,
            "next_page": page.number + 1 if page.has_next else None}
