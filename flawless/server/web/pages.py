"""The read-only pages and their JSON twins: the week, one error, one developer.

Each handler checks its parameters on the reactor thread (a bad one is a 400 page), then
reads the database and renders in a reader thread.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Optional

from twisted.web import server

from flawless.report import report_to_dict
from flawless.server.core.calendar import day_of, week_start, week_timestamp
from flawless.server.core.channels import error_fingerprint
from flawless.server.core.model import ErrorKey, ErrorRecord
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner
from flawless.server.web.http import Answer, HttpError, Params, json_answer
from flawless.server.web.render import Renderer, Visitor
from flawless.server.web.views import (CHART_DAYS, blamed_frame_index, daily_chart,
                                       delivery_view, error_json, leaderboard)


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
    """Handlers of the pages anyone who reaches the dashboard may read."""

    def __init__(self, storage: Storage, reader: Runner, renderer: Renderer,
                 visitor: Callable[[server.Request], Visitor]):
        self._storage = storage
        self._reader = reader
        self._renderer = renderer
        self._visitor = visitor

    # -- the week --

    def _week(self, timestamp: Optional[float], include_known: bool, query: str
              ) -> dict[str, Any]:
        now = self._renderer.now()
        week = week_start(now if timestamp is None else timestamp)
        start = week_timestamp(week)
        rows = self._storage.week_errors(week, include_known)
        groups = leaderboard(rows, query.strip())
        return {"week": week, "week_timestamp": start, "groups": groups,
                "previous_timestamp": start - 7 * 86400,
                "next_timestamp": start + 7 * 86400 if start + 7 * 86400 <= now else None,
                "include_known_errors": include_known, "query": query.strip(),
                "hidden_rows": len(rows) - sum(len(group.errors) for group in groups)}

    def _weekly_page(self, visitor: Visitor, timestamp: Optional[float], include_known: bool,
                     query: str) -> Answer:
        return self._renderer.render("page_weekly.html", visitor,
                                     **self._week(timestamp, include_known, query))

    def _weekly_json(self, timestamp: Optional[float], include_known: bool,
                     query: str) -> dict[str, Any]:
        week = self._week(timestamp, include_known, query)
        return {"week": week["week"], "include_known_errors": include_known,
                "previous_timestamp": week["previous_timestamp"],
                "next_timestamp": week["next_timestamp"],
                "developers": [{"email": group.email, "name": group.name, "total": group.total,
                                "errors": [error_json(record, count)
                                           for record, count in group.errors]}
                               for group in week["groups"]]}

    async def weekly(self, request: server.Request) -> Answer:
        """``/`` and ``/get_weekly_error_report``."""
        params = Params(request.args)
        return await self._reader.run(self._weekly_page, self._visitor(request),
                                      params.timestamp(), params.flag("include_known_errors"),
                                      params.text("q"))

    async def weekly_api(self, request: server.Request) -> Answer:
        """``/api/weekly_report``."""
        params = Params(request.args)
        return json_answer(await self._reader.run(
            self._weekly_json, params.timestamp(), params.flag("include_known_errors"),
            params.text("q")))

    # -- one error --

    def _traceback_page(self, visitor: Visitor, key: ErrorKey, line_number: Optional[int],
                        timestamp: Optional[float]) -> Answer:
        record = find_error(self._storage, key, line_number)
        last_day = day_of(self._renderer.now())
        since = (datetime.date.fromisoformat(last_day)
                 - datetime.timedelta(days=CHART_DAYS - 1)).isoformat()
        chart = daily_chart(self._storage.daily_counts(record.error_id, since), last_day)
        return self._renderer.render(
            "page_traceback.html", visitor, record=record, chart=chart,
            blamed_index=blamed_frame_index(record),
            deliveries=[delivery_view(delivery)
                        for delivery in self._storage.deliveries(record.error_id)],
            issues=self._storage.issue_links(error_fingerprint(record.key)),
            week_timestamp=int(timestamp if timestamp is not None else record.last_seen))

    def _error_json(self, key: ErrorKey, line_number: Optional[int]) -> dict[str, Any]:
        record = find_error(self._storage, key, line_number)
        data = error_json(record)
        data["report"] = report_to_dict(record.last_report)
        data["explanation"] = list(record.explanation)
        data["daily_counts"] = self._storage.daily_counts(record.error_id, "0000-00-00")
        data["deliveries"] = [delivery_view(delivery).__dict__
                              for delivery in self._storage.deliveries(record.error_id)]
        data["issues"] = [{"channel": link.channel, "destination": link.destination,
                           "number": link.number, "url": link.url}
                          for link in self._storage.issue_links(error_fingerprint(record.key))]
        return data

    async def traceback(self, request: server.Request) -> Answer:
        """``/view_traceback``."""
        params = Params(request.args)
        key, line_number = error_key(params)
        return await self._reader.run(self._traceback_page, self._visitor(request), key,
                                      line_number, params.timestamp())

    async def error_api(self, request: server.Request) -> Answer:
        """``/api/error``."""
        key, line_number = error_key(Params(request.args))
        return json_answer(await self._reader.run(self._error_json, key, line_number))

    # -- one developer --

    def _developer_page(self, visitor: Visitor, email: str) -> Answer:
        errors = self._storage.author_errors(email)
        name = next((record.author_name for record in errors if record.author_name), email)
        return self._renderer.render(
            "page_developer.html", visitor, email=email, name=name, errors=errors,
            weeks=self._storage.author_weekly_totals(email),
            total=sum(record.count for record in errors))

    def _developer_json(self, email: str) -> dict[str, Any]:
        return {"email": email,
                "weeks": [{"week": week, "count": count}
                          for week, count in self._storage.author_weekly_totals(email)],
                "errors": [error_json(record) for record in self._storage.author_errors(email)]}

    async def developer(self, request: server.Request) -> Answer:
        """``/developer``."""
        email = Params(request.args).text("email", required=True).strip()
        return await self._reader.run(self._developer_page, self._visitor(request), email)

    async def developer_api(self, request: server.Request) -> Answer:
        """``/api/developer``."""
        email = Params(request.args).text("email", required=True).strip()
        return json_answer(await self._reader.run(self._developer_json, email))

    async def api_index(self, request: server.Request) -> Answer:
        """``/api/``: what the API offers."""
        return json_answer({"endpoints": {
            "/api/weekly_report": "timestamp, include_known_errors, q",
            "/api/error": "filename, function_name, text, line_number",
            "/api/developer": "email",
            "/api/health": ""}})
