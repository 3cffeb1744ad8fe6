"""The dashboard: the weekly leaderboard, tracebacks, developer pages, rule forms, JSON API.

Each page parses and checks its parameters on the reactor thread (a bad one is a 400 page),
then reads the store and renders its jinja2 template in a reader thread. Templates are
autoescaped and the pages carry no script at all; the Content-Security-Policy forbids one.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional, Sequence

import jinja2
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from flawless import __version__
from flawless.report import report_to_dict
from flawless.server import rule_edit
from flawless.server.routing import ErrorKey
from flawless.server.sessions import (LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS,
                                      AdminGate, Session, TooManyAttempts, new_token,
                                      tokens_match)
from flawless.server.store import ErrorRecord, Store, day_of, week_start

log = Logger()

CHART_DAYS = 56
MAX_TIMESTAMP = 253402300799  # 9999-12-31
STATIC_FILES = {"dashboard.css": "text/css; charset=utf-8",
                "logo.svg": "image/svg+xml"}
SECURITY_HEADERS = (
    ("content-security-policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


# -- values ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class HttpError(Exception):
    """Ends a request with ``status`` and a message meant for the person who sent it."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class DeveloperGroup:
    """The errors of one week blamed on one developer (email None: blamed on nobody)."""

    email: Optional[str]
    name: str
    total: int
    errors: tuple[tuple[ErrorRecord, int], ...]


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


# -- pure helpers --------------------------------------------------------------------------

def template_directory() -> str:
    """The directory of the jinja2 templates and static files (the flawless.templates
    package)."""
    from importlib.resources import files

    return str(files("flawless.templates"))


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


def week_timestamp(week: str) -> int:
    """Epoch seconds of 00:00 UTC on the Monday ``week`` (YYYY-MM-DD)."""
    day = datetime.date.fromisoformat(week)
    return int(datetime.datetime(day.year, day.month, day.day,
                                 tzinfo=datetime.timezone.utc).timestamp())


def _matches(record: ErrorRecord, query: str) -> bool:
    needle = query.casefold()
    return any(needle in (value or "").casefold() for value in (
        record.key.filename, record.key.function_name, record.key.text, record.exception_type,
        record.author_name, record.author_email, record.last_report.exception_message))


def leaderboard(rows: Iterable[tuple[ErrorRecord, int]], query: str = ""
                ) -> list[DeveloperGroup]:
    """A week's errors grouped by blamed developer, most occurrences first."""
    groups: dict[Optional[str], list[tuple[ErrorRecord, int]]] = {}
    for record, count in rows:
        if query and not _matches(record, query):
            continue
        email = record.author_email.lower() if record.author_email else None
        groups.setdefault(email, []).append((record, count))
    result = []
    for email, errors in groups.items():
        errors.sort(key=lambda pair: (-pair[1], -pair[0].last_seen))
        name = next((record.author_name for record, _ in errors if record.author_name),
                    email or "Blamed on nobody")
        result.append(DeveloperGroup(email, name, sum(count for _, count in errors),
                                     tuple(errors)))
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
        "url": link("/view_traceback", **error_params(record)),
    }
    if week_count is not None:
        data["week_count"] = week_count
    return data


def blamed_frame_index(record: ErrorRecord) -> Optional[int]:
    """Which frame of the latest report is the blamed one, if it can be told."""
    for index in range(len(record.last_report.traceback) - 1, -1, -1):
        frame = record.last_report.traceback[index]
        if (frame.function_name == record.key.function_name
                and frame.line_number == record.line_number
                and frame.filename.replace("\\", "/").endswith(record.key.filename)):
            return index
    return None


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (JSON data) with every secret and every credential inside a URL masked."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "(secret)")
        return _URL_CREDENTIALS.sub(r"\1(credentials)@", value)
    if isinstance(value, Mapping):
        return {key: redact(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item, secrets) for item in value]
    return value


def config_secrets(config: Any) -> list[str]:
    """Every secret value of the config, longest first (so none is left half-masked)."""
    found = [config.smtp_password, config.admin_password, *config.ingest_keys]
    parts = urllib.parse.urlsplit(config.repo_url or "")
    found += [parts.password or "", urllib.parse.unquote(parts.password or "")]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def safe_next(path: str) -> str:
    """A local path to return to after login (anything else becomes /)."""
    if path.startswith("/") and not path.startswith("//") and "\\" not in path \
            and not any(ord(char) < 32 for char in path):
        return path
    return "/"


# -- request parameters ------------------------------------------------------------------

class Params:
    """Checked access to a request's query and form parameters."""

    def __init__(self, args: Mapping[bytes, Sequence[bytes]]):
        self._args = args

    def text(self, name: str, required: bool = False, default: str = "") -> str:
        """One text parameter; a required one must be present and not blank."""
        values = self._args.get(name.encode())
        if not values:
            if required:
                raise HttpError(400, f"The parameter '{name}' is missing.")
            return default
        try:
            value = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, f"The parameter '{name}' is not valid UTF-8.") from None
        if required and not value.strip():
            raise HttpError(400, f"The parameter '{name}' is empty.")
        return value

    def timestamp(self, name: str = "timestamp") -> Optional[float]:
        """Seconds since the epoch, or None when absent."""
        raw = self.text(name).strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 <= value <= MAX_TIMESTAMP:
            raise HttpError(400, f"The parameter '{name}' must be a time in seconds since "
                                 f"1970 (for example {int(datetime.datetime.now().timestamp())}).")
        return value

    def positive_int(self, name: str) -> Optional[int]:
        """A whole number of at least 1, or None when absent."""
        raw = self.text(name).strip()
        if not raw:
            return None
        if not raw.isdigit() or not 1 <= int(raw) <= 10**9:
            raise HttpError(400, f"The parameter '{name}' must be a whole number of at least 1.")
        return int(raw)

    def flag(self, name: str) -> bool:
        """A yes/no parameter; absent means no."""
        raw = self.text(name).strip().lower()
        if raw in TRUE_WORDS:
            return True
        if raw in FALSE_WORDS:
            return False
        raise HttpError(400, f"The parameter '{name}' must be true or false.")

    def form(self) -> dict[str, str]:
        """Every parameter as text (first value of each)."""
        return {name.decode("utf-8", "replace"): self.text(name.decode("utf-8", "replace"))
                for name in self._args}


# -- pages -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Visitor:
    """Who asks: whether they are logged in as admin, and their CSRF token."""

    admin: bool
    csrf_token: str = ""


class Dashboard:
    """Builds every page and API answer from the store (the ``*_page`` methods block:
    run them in a reader thread)."""

    def __init__(self, app: Any, templates: Optional[str] = None):
        self.app = app
        self.store: Store = app.store
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates or template_directory()),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self.environment.globals.update(link=link, error_params=error_params,
                                        week_timestamp_of=week_timestamp, version=__version__)
        self.environment.filters.update(time=format_time, date=format_date,
                                        longdate=format_long_date)

    @property
    def config_dir(self) -> str:
        """Where the rule files are."""
        return self.app.config.config_dir_path

    def now(self) -> float:
        """The current time (the reactor's clock)."""
        return float(self.app.reactor.seconds())

    def render(self, template: str, visitor: Visitor, status: int = 200,
               **context: Any) -> Answer:
        """A page from its template; every page knows the visitor and the time."""
        now = self.now()
        body = self.environment.get_template(template).render(
            visitor=visitor, now=now, age=lambda ts: format_age(ts, now), **context)
        return Answer(status, body.encode("utf-8"))

    def message(self, visitor: Visitor, status: int, title: str, text: str) -> Answer:
        """A page that only says something (errors, refusals)."""
        return self.render("page_message.html", visitor, status, title=title, text=text)

    # -- the week --

    def week(self, timestamp: Optional[float], include_known: bool, query: str
             ) -> dict[str, Any]:
        """The data of one week's leaderboard."""
        moment = self.now() if timestamp is None else timestamp
        week = week_start(moment)
        start = week_timestamp(week)
        rows = self.store.week_errors(week, include_known)
        groups = leaderboard(rows, query.strip())
        return {"week": week, "week_timestamp": start, "groups": groups,
                "previous_timestamp": start - 7 * 86400,
                "next_timestamp": start + 7 * 86400 if start + 7 * 86400 <= self.now()
                else None,
                "include_known_errors": include_known, "query": query.strip(),
                "hidden_rows": len(rows) - sum(len(group.errors) for group in groups)}

    def weekly_page(self, visitor: Visitor, timestamp: Optional[float], include_known: bool,
                    query: str) -> Answer:
        """The leaderboard page."""
        return self.render("page_weekly.html", visitor, **self.week(timestamp, include_known,
                                                                   query))

    def weekly_json(self, timestamp: Optional[float], include_known: bool,
                    query: str) -> dict[str, Any]:
        """The leaderboard as JSON data."""
        week = self.week(timestamp, include_known, query)
        return {"week": week["week"], "include_known_errors": include_known,
                "previous_timestamp": week["previous_timestamp"],
                "next_timestamp": week["next_timestamp"],
                "developers": [{"email": group.email, "name": group.name, "total": group.total,
                                "errors": [error_json(record, count)
                                           for record, count in group.errors]}
                               for group in week["groups"]]}

    # -- one error --

    def find(self, key: ErrorKey, line_number: Optional[int]) -> ErrorRecord:
        """The error a link names; by line number when its source text changed since."""
        record = self.store.find_error(key)
        if record is None and line_number is not None:
            near = self.store.errors_at_line(key.filename, key.function_name, line_number)
            record = near[0] if near else None
        if record is None:
            raise HttpError(404, f"No error is recorded at {key.filename}, function "
                                 f"{key.function_name}. It may have been recorded by another "
                                 "flawless server.")
        return record

    def traceback_page(self, visitor: Visitor, key: ErrorKey, line_number: Optional[int],
                       timestamp: Optional[float]) -> Answer:
        """Everything about one error."""
        record = self.find(key, line_number)
        last_day = day_of(self.now())
        since = (datetime.date.fromisoformat(last_day)
                 - datetime.timedelta(days=CHART_DAYS - 1)).isoformat()
        chart = daily_chart(self.store.daily_counts(record.error_id, since), last_day)
        return self.render("page_traceback.html", visitor, record=record, chart=chart,
                           blamed_index=blamed_frame_index(record),
                           week_timestamp=int(timestamp if timestamp is not None
                                              else record.last_seen))

    def error_json(self, key: ErrorKey, line_number: Optional[int]) -> dict[str, Any]:
        """One error with its latest report and daily counts as JSON data."""
        record = self.find(key, line_number)
        data = error_json(record)
        data["report"] = report_to_dict(record.last_report)
        data["explanation"] = list(record.explanation)
        data["daily_counts"] = self.store.daily_counts(record.error_id, "0000-00-00")
        return data

    # -- one developer --

    def developer_page(self, visitor: Visitor, email: str) -> Answer:
        """Every error blamed on one developer, across weeks."""
        errors = self.store.author_errors(email)
        name = next((record.author_name for record in errors if record.author_name), email)
        return self.render("page_developer.html", visitor, email=email, name=name,
                           errors=errors, weeks=self.store.author_weekly_totals(email),
                           total=sum(record.count for record in errors))

    def developer_json(self, email: str) -> dict[str, Any]:
        """A developer's errors and weekly totals as JSON data."""
        return {"email": email,
                "weeks": [{"week": week, "count": count}
                          for week, count in self.store.author_weekly_totals(email)],
                "errors": [error_json(record) for record in self.store.author_errors(email)]}

    # -- rules --

    def rules_page(self, visitor: Visitor, forms: Mapping[str, Mapping[str, str]],
                   errors: Mapping[str, Mapping[str, str]], status: int = 200) -> Answer:
        """Every rule file: its entries and a form to add one."""
        files = []
        for kind, rule in rule_edit.RULE_FILES.items():
            try:
                entries, problem = rule_edit.read_entries(self.config_dir, kind), ""
            except rule_edit.RuleFileError as error:
                entries, problem = [], str(error)
            if isinstance(entries, Mapping):
                entries = [f"{source} → {target}" for source, target in entries.items()]
            files.append({"rule": rule, "entries": entries, "problem": problem,
                          "form_values": forms.get(kind, {}),
                          "form_errors": errors.get(kind, {})})
        return self.render("page_rules.html", visitor, status, files=files,
                           config_dir=self.config_dir)

    def known_error_page(self, visitor: Visitor, key: ErrorKey, line_number: Optional[int],
                         values: Optional[Mapping[str, str]] = None,
                         errors: Optional[Mapping[str, str]] = None,
                         status: int = 200) -> Answer:
        """The known-error form, prefilled with the error a link names."""
        try:
            record: Optional[ErrorRecord] = self.find(key, line_number) if key.filename \
                else None
        except HttpError:
            record = None
        prefill = {"filename": key.filename, "function_name": key.function_name,
                   "code_fragment": key.text}
        return self.render("page_known_error.html", visitor, status, record=record,
                           rule=rule_edit.RULE_FILES["known_errors"],
                           values=values if values is not None else prefill,
                           errors=errors or {}, line_number=line_number)

    def save_rule(self, kind: str, entry: rule_edit.Entry) -> str:
        """Append one entry to its rule file; returns the path written."""
        return rule_edit.add_entry(self.config_dir, kind, entry)

    def saved_page(self, visitor: Visitor, kind: str, entry: rule_edit.Entry,
                   back: str) -> Answer:
        """Confirmation of a rule-file change."""
        return self.render("page_saved.html", visitor, rule=rule_edit.RULE_FILES[kind],
                           entry_text=rule_edit.entry_text(kind, entry), back=back)

    # -- health --

    def health(self) -> dict[str, Any]:
        """The server's status with every secret masked."""
        return redact(self.app.health(), config_secrets(self.app.config))


# -- Twisted resources -----------------------------------------------------------------------

Handler = Callable[[server.Request], Awaitable[Answer]]


def html_error(dashboard: Dashboard, status: int, message: str) -> Answer:
    """An error page (rendered without touching the store)."""
    titles = {400: "Bad request", 401: "Not logged in", 403: "Not allowed", 404: "Not found",
              429: "Too many attempts", 500: "Server error"}
    return dashboard.message(Visitor(False), status, titles.get(status, "Error"), message)


def json_error(status: int, message: str) -> Answer:
    """An error answer of the JSON API."""
    return Answer(status, json.dumps({"error": message}).encode(), "application/json")


def json_answer(data: Any) -> Answer:
    """A JSON API answer."""
    return Answer(200, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                  "application/json; charset=utf-8")


class Endpoint(resource.Resource):
    """One URL: runs its GET or POST handler and writes the answer (or an error page)."""

    isLeaf = True

    def __init__(self, dashboard: Dashboard, get: Optional[Handler] = None,
                 post: Optional[Handler] = None, as_json: bool = False):
        super().__init__()
        self._dashboard = dashboard
        self._get = get
        self._post = post
        self._as_json = as_json

    def render_GET(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Answer a GET (and HEAD)."""
        return self._run(self._get, request)

    def render_POST(self, request: server.Request) -> Any:  # noqa: N802 - Twisted API
        """Answer a POST."""
        return self._run(self._post, request)

    def _run(self, handler: Optional[Handler], request: server.Request) -> Any:
        if handler is None:
            request.setHeader(b"allow", b"GET, HEAD" if self._post is None else b"GET, POST")
            self._write(request, self._error(405, "This address does not take that method."))
            return server.NOT_DONE_YET
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))
        result = defer.ensureDeferred(handler(request))
        result.addErrback(self._failed)
        result.addCallback(lambda answer: None if finished else self._write(request, answer))
        result.addErrback(lambda failure: log.failure("writing an answer failed", failure))
        return server.NOT_DONE_YET

    def _error(self, status: int, message: str) -> Answer:
        if self._as_json:
            return json_error(status, message)
        return html_error(self._dashboard, status, message)

    def _failed(self, failure: Any) -> Answer:
        if failure.check(HttpError):
            answer = self._error(failure.value.status, failure.value.message)
            if failure.value.status == 429:
                retry = str(getattr(failure.value, "retry_after", 60))
                answer = Answer(answer.status, answer.body, answer.content_type,
                                answer.headers + (("retry-after", retry),))
            return answer
        log.failure("dashboard page failed", failure)
        return self._error(500, "Something went wrong on the server; its log has the details.")

    @staticmethod
    def _write(request: server.Request, answer: Answer) -> None:
        request.setResponseCode(answer.status)
        request.setHeader(b"content-type", answer.content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        for name, value in SECURITY_HEADERS + answer.headers:
            if name == "set-cookie":  # several may be set; setHeader would keep the last
                request.responseHeaders.addRawHeader(b"set-cookie", value.encode("latin-1"))
            else:
                request.setHeader(name.encode(), value.encode("latin-1"))
        request.setHeader(b"content-length", str(len(answer.body)).encode())
        request.write(answer.body)
        request.finish()


class TooManyLogins(HttpError):
    """A login refused by the rate limit."""

    def __init__(self, retry_after: int):
        super().__init__(429, f"Too many failed logins. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


def redirect(location: str, *cookies: str) -> Answer:
    """A 303 to ``location``, setting the given Set-Cookie values."""
    headers = (("location", location),) + tuple(("set-cookie", cookie) for cookie in cookies)
    return Answer(303, b"", "text/plain; charset=utf-8", headers)


def cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    """A Set-Cookie value that scripts cannot read and other sites never send."""
    return (f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


class Pages:
    """The request handlers: parameters and login on the reactor, the rest in a thread."""

    def __init__(self, app: Any, dashboard: Dashboard, gate: AdminGate):
        self.app = app
        self.dashboard = dashboard
        self.gate = gate

    def _blocking(self, function: Callable[..., Any], *args: Any) -> defer.Deferred:
        return self.app.read_call(function, *args)

    def _session(self, request: server.Request) -> Optional[Session]:
        value = request.getCookie(SESSION_COOKIE.encode())
        return self.gate.session(value.decode("latin-1") if value else None)

    def visitor(self, request: server.Request) -> Visitor:
        """Who sent this request."""
        session = self._session(request)
        return Visitor(True, session.csrf_token) if session else Visitor(False)

    def _admin(self, request: server.Request, params: Params) -> Session:
        """The session of a state-changing request, whose CSRF token must match."""
        if not self.gate.enabled:
            raise HttpError(403, "Changes from the dashboard are off: set admin_password in "
                                 "flawless.cfg and restart the server to turn them on.")
        session = self._session(request)
        if session is None:
            raise HttpError(401, "Log in first (your session may have expired).")
        if not tokens_match(session.csrf_token, params.text("csrf_token")):
            raise HttpError(403, "This form has expired. Reload the page and try again.")
        return session

    def _disabled(self, visitor: Visitor) -> Answer:
        return self.dashboard.render("page_disabled.html", visitor, 403,
                                     config_path=self.app.config.path or "flawless.cfg")

    # -- read-only pages --

    async def weekly(self, request: server.Request) -> Answer:
        """``/`` and ``/get_weekly_error_report``."""
        params = Params(request.args)
        return await self._blocking(self.dashboard.weekly_page, self.visitor(request),
                                    params.timestamp(), params.flag("include_known_errors"),
                                    params.text("q"))

    async def weekly_api(self, request: server.Request) -> Answer:
        """``/api/weekly_report``."""
        params = Params(request.args)
        return json_answer(await self._blocking(
            self.dashboard.weekly_json, params.timestamp(), params.flag("include_known_errors"),
            params.text("q")))

    @staticmethod
    def _key(params: Params, required: bool = True) -> tuple[ErrorKey, Optional[int]]:
        key = ErrorKey(params.text("filename", required), params.text("function_name", required),
                       params.text("text"))
        return key, params.positive_int("line_number")

    async def traceback(self, request: server.Request) -> Answer:
        """``/view_traceback``."""
        params = Params(request.args)
        key, line_number = self._key(params)
        return await self._blocking(self.dashboard.traceback_page, self.visitor(request), key,
                                    line_number, params.timestamp())

    async def error_api(self, request: server.Request) -> Answer:
        """``/api/error``."""
        params = Params(request.args)
        key, line_number = self._key(params)
        return json_answer(await self._blocking(self.dashboard.error_json, key, line_number))

    async def developer(self, request: server.Request) -> Answer:
        """``/developer``."""
        email = Params(request.args).text("email", required=True).strip()
        return await self._blocking(self.dashboard.developer_page, self.visitor(request), email)

    async def developer_api(self, request: server.Request) -> Answer:
        """``/api/developer``."""
        email = Params(request.args).text("email", required=True).strip()
        return json_answer(await self._blocking(self.dashboard.developer_json, email))

    async def health(self, request: server.Request) -> Answer:
        """``/check_health`` and ``/api/health``: 503 when the status cannot be read."""
        try:
            return json_answer(await self._blocking(self.dashboard.health))
        except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
            reason = redact(str(error), config_secrets(self.app.config))
            return Answer(503, json.dumps({"status": "error", "reason": reason}).encode(),
                          "application/json")

    async def api_index(self, request: server.Request) -> Answer:
        """``/api/``: what the API offers."""
        return json_answer({"endpoints": {
            "/api/weekly_report": "timestamp, include_known_errors, q",
            "/api/error": "filename, function_name, text, line_number",
            "/api/developer": "email",
            "/api/health": ""}})

    # -- login --

    async def login_form(self, request: server.Request, problem: str = "",
                         status: int = 200) -> Answer:
        """``/login``: the password form (its token doubles as a login-CSRF cookie)."""
        visitor = self.visitor(request)
        if not self.gate.enabled:
            return self._disabled(visitor)
        token = new_token()
        answer = self.dashboard.render(
            "page_login.html", visitor, status, login_token=token, problem=problem,
            next=safe_next(Params(request.args).text("next", default="/")))
        return Answer(answer.status, answer.body, answer.content_type, (
            ("set-cookie", cookie(LOGIN_COOKIE, token, 3600, request.isSecure())),))

    async def login(self, request: server.Request) -> Answer:
        """POST ``/login``: check the password, open a session, go back where one came from."""
        params = Params(request.args)
        if not self.gate.enabled:
            return self._disabled(Visitor(False))
        sent_cookie = request.getCookie(LOGIN_COOKIE.encode())
        if not tokens_match(sent_cookie.decode("latin-1") if sent_cookie else None,
                            params.text("login_token")):
            return await self.login_form(request, "The login form expired; try again.", 403)
        try:
            session = self.gate.login(request.getClientAddress().host or "",
                                      params.text("password"))
        except TooManyAttempts as refused:
            raise TooManyLogins(refused.retry_after) from None
        if session is None:
            return await self.login_form(request, "Wrong password.", 401)
        secure = request.isSecure()
        return redirect(safe_next(params.text("next", default="/")),
                        cookie(SESSION_COOKIE, session.session_id, SESSION_SECONDS, secure),
                        cookie(LOGIN_COOKIE, "", 0, secure))

    async def logout(self, request: server.Request) -> Answer:
        """POST ``/logout``."""
        session = self._admin(request, Params(request.args))
        self.gate.logout(session.session_id)
        return redirect("/", cookie(SESSION_COOKIE, "", 0, request.isSecure()))

    # -- rule forms --

    def _login_first(self, request: server.Request) -> Answer:
        return redirect(link("/login", next=request.uri.decode("utf-8", "replace")))

    async def known_error_form(self, request: server.Request) -> Answer:
        """``/add_known_error``: the form prefilled from the email's link."""
        visitor = self.visitor(request)
        if not self.gate.enabled:
            return self._disabled(visitor)
        if not visitor.admin:
            return self._login_first(request)
        params = Params(request.args)
        key, line_number = self._key(params, required=False)
        return await self._blocking(self.dashboard.known_error_page, visitor, key, line_number)

    async def add_known_error(self, request: server.Request) -> Answer:
        """POST ``/add_known_error``."""
        params = Params(request.args)
        self._admin(request, params)
        visitor = self.visitor(request)
        form = params.form()
        line_number = params.positive_int("line_number")
        try:
            entry = rule_edit.entry_from_form("known_errors", form)
        except rule_edit.FormInvalid as invalid:
            key = ErrorKey(form.get("filename", ""), form.get("function_name", ""),
                           form.get("code_fragment", ""))
            return await self._blocking(self.dashboard.known_error_page, visitor, key,
                                        line_number, form, invalid.errors, 400)
        await self._save("known_errors", entry)
        back = link("/view_traceback", filename=form.get("filename"),
                    function_name=form.get("function_name", ""), text=form.get("code_fragment"),
                    line_number=line_number) if form.get("function_name") else "/"
        return self.dashboard.saved_page(visitor, "known_errors", entry, back)

    async def rules(self, request: server.Request) -> Answer:
        """``/rules``: every rule file with a form to add an entry."""
        visitor = self.visitor(request)
        if not self.gate.enabled:
            return self._disabled(visitor)
        if not visitor.admin:
            return self._login_first(request)
        return await self._blocking(self.dashboard.rules_page, visitor, {}, {})

    async def add_rule(self, request: server.Request) -> Answer:
        """POST ``/rules``: add one entry to the rule file the form names."""
        params = Params(request.args)
        self._admin(request, params)
        visitor = self.visitor(request)
        kind = params.text("kind", required=True)
        if kind not in rule_edit.RULE_FILES:
            raise HttpError(400, f"There is no rule file of kind '{kind}'.")
        form = params.form()
        try:
            entry = rule_edit.entry_from_form(kind, form)
        except rule_edit.FormInvalid as invalid:
            return await self._blocking(self.dashboard.rules_page, visitor, {kind: form},
                                        {kind: invalid.errors}, 400)
        await self._save(kind, entry)
        return self.dashboard.saved_page(visitor, kind, entry, "/rules")

    async def _save(self, kind: str, entry: rule_edit.Entry) -> None:
        try:
            path = await self._blocking(self.dashboard.save_rule, kind, entry)
        except rule_edit.DuplicateEntry as duplicate:
            raise HttpError(409, f"Nothing changed: {duplicate}.") from None
        except rule_edit.RuleFileError as problem:
            raise HttpError(409, f"Nothing changed: {problem}") from None
        log.info("dashboard added an entry to {path}", path=path)
        # Apply it now rather than at the next poll, so that the very next report follows it.
        self.app.reloader.poll()


class StaticFile(resource.Resource):
    """A stylesheet or image from the template directory."""

    isLeaf = True

    def __init__(self, path: str, content_type: str):
        super().__init__()
        with open(path, "rb") as handle:
            self._body = handle.read()
        self._content_type = content_type.encode()

    def render_GET(self, request: server.Request) -> bytes:  # noqa: N802 - Twisted API
        """The file, cacheable for an hour."""
        request.setHeader(b"content-type", self._content_type)
        request.setHeader(b"cache-control", b"public, max-age=3600")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return self._body


class Root(resource.Resource):
    """Dispatches each path explicitly; anything else is the dashboard's own 404 page."""

    def __init__(self, dashboard: Dashboard):
        super().__init__()
        self._missing = Endpoint(dashboard, get=self._not_found, post=self._not_found)

    @staticmethod
    async def _not_found(request: server.Request) -> Answer:
        raise HttpError(404, "There is no page at this address.")

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:  # noqa: N802
        """Unknown paths get the 404 page."""
        return self._missing


def _static(directory: str) -> resource.Resource:
    folder = resource.Resource()
    for name, content_type in STATIC_FILES.items():
        folder.putChild(name.encode(), StaticFile(os.path.join(directory, name), content_type))
    return folder


def build_web_root(app: Any) -> resource.Resource:
    """The dashboard's resource tree for a FlawlessServer (or anything with its attributes:
    ``store``, ``config``, ``reactor``, ``reloader``, ``read_call``, ``health``)."""
    dashboard = Dashboard(app)
    gate = AdminGate(app.config.admin_password, clock=app.reactor.seconds)
    pages = Pages(app, dashboard, gate)
    root = Root(dashboard)
    weekly = Endpoint(dashboard, get=pages.weekly)
    routes: dict[bytes, resource.Resource] = {
        b"": weekly,
        b"get_weekly_error_report": weekly,
        b"view_traceback": Endpoint(dashboard, get=pages.traceback),
        b"developer": Endpoint(dashboard, get=pages.developer),
        b"check_health": Endpoint(dashboard, get=pages.health, as_json=True),
        b"login": Endpoint(dashboard, get=pages.login_form, post=pages.login),
        b"logout": Endpoint(dashboard, post=pages.logout),
        b"add_known_error": Endpoint(dashboard, get=pages.known_error_form,
                                     post=pages.add_known_error),
        b"rules": Endpoint(dashboard, get=pages.rules, post=pages.add_rule),
        b"static": _static(dashboard.environment.loader.searchpath[0]),  # type: ignore
    }
    api = resource.Resource()
    api.putChild(b"", Endpoint(dashboard, get=pages.api_index, as_json=True))
    api.putChild(b"weekly_report", Endpoint(dashboard, get=pages.weekly_api, as_json=True))
    api.putChild(b"error", Endpoint(dashboard, get=pages.error_api, as_json=True))
    api.putChild(b"developer", Endpoint(dashboard, get=pages.developer_api, as_json=True))
    api.putChild(b"health", Endpoint(dashboard, get=pages.health, as_json=True))
    routes[b"api"] = api
    for path, child in routes.items():
        root.putChild(path, child)
    return root
