"""The dashboard's pages from the jinja2 templates (autoescaped; the pages carry no script)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Callable, Optional

import jinja2

from flawless import __version__
from flawless.server.core.calendar import week_timestamp
from flawless.server.core.cell_frames import frame_where
from flawless.server.core.text import plural
from flawless.server.web.http import Answer
from flawless.server.web.views import (error_params, format_age, format_date, format_long_date,
                                       format_time, link, record_place)

ERROR_TITLES = {400: "Bad request", 401: "Not logged in", 403: "Not allowed", 404: "Not found",
                409: "Nothing changed", 429: "Too many attempts", 500: "Server error"}


def template_directory() -> str:
    """The directory of the jinja2 templates and static files (the flawless.templates
    package)."""
    return str(files("flawless.templates"))


@dataclass(frozen=True)
class Visitor:
    """Who asks: their role when logged in ("admin" or "viewer", else ""), and their CSRF
    token."""

    role: str = ""
    csrf_token: str = ""

    @property
    def admin(self) -> bool:
        """Whether they may change rule files."""
        return self.role == "admin"

    @property
    def logged_in(self) -> bool:
        """Whether they are logged in at all."""
        return bool(self.role)


class Renderer:
    """Renders a template into an :class:`Answer`; every page knows the visitor and the time."""

    def __init__(self, now: Callable[[], float], templates: Optional[str] = None):
        self.now = now
        self.directory = templates or template_directory()
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.directory),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self.environment.globals.update(link=link, error_params=error_params,
                                        week_timestamp_of=week_timestamp, version=__version__,
                                        record_place=record_place, frame_where=frame_where)
        self.environment.filters.update(time=format_time, date=format_date,
                                        longdate=format_long_date, plural=plural)

    def render(self, template: str, visitor: Visitor, status: int = 200,
               **context: Any) -> Answer:
        """A page from its template."""
        now = self.now()
        body = self.environment.get_template(template).render(
            visitor=visitor, now=now, age=lambda ts: format_age(ts, now), **context)
        return Answer(status, body.encode("utf-8"))

    def message(self, visitor: Visitor, status: int, title: str, text: str) -> Answer:
        """A page that only says something (errors, refusals)."""
        return self.render("page_message.html", visitor, status, title=title, text=text)

    def error_page(self, status: int, message: str) -> Answer:
        """An error page (rendered without touching the database)."""
        return self.message(Visitor(), status, ERROR_TITLES.get(status, "Error"), message)
