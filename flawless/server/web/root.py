"""The dashboard's URL tree: every path dispatched explicitly, anything else a 404 page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

from twisted.web import resource, server

from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner
from flawless.server.web.admin import AdminPages
from flawless.server.web.fixes import Commits, FixPages
from flawless.server.web.health import HealthPage
from flawless.server.web.http import Answer, Endpoint, HttpError, StaticFile
from flawless.server.web.pages import ReadPages
from flawless.server.web.render import Renderer
from flawless.server.web.sessions import Gate

STATIC_FILES = {"dashboard.css": "text/css; charset=utf-8",
                "logo.svg": "image/svg+xml"}


@dataclass(frozen=True)
class WebParts:
    """What the dashboard needs from the rest of the server."""

    storage: Storage
    reader: Runner                        # blocking reads, off the reactor thread
    writer: Runner                        # the database's one writer
    clock: Any                            # IReactorTime
    health: HealthPage
    config_dir: str                       # the rule files
    config_path: str                      # flawless.cfg, named in messages
    admin_password: str
    reload_rules: Callable[[], None]      # apply an edited rule file now
    commits: Optional[Commits] = None     # looks a fix commit up; None: no repository
    templates: Optional[str] = None       # another template directory (tests)
    viewer_password: str = ""             # when set, reading needs a login too
    secure_cookies: bool = False          # behind a TLS proxy: cookies get Secure
    client_address: Callable[[server.Request], str] = (   # trusted proxies aside
        lambda request: getattr(request.getClientAddress(), "host", "") or "")
    page_size: int = 100


class Root(resource.Resource):
    """Dispatches each path explicitly; anything else is the dashboard's own 404 page."""

    def __init__(self, missing: resource.Resource):
        super().__init__()
        self._missing = missing

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:  # noqa: N802
        """Unknown paths get the 404 page."""
        return self._missing


async def _not_found(request: server.Request) -> Answer:
    raise HttpError(404, "There is no page at this address.")


def build_web_root(parts: WebParts) -> resource.Resource:
    """The dashboard's resource tree."""
    renderer = Renderer(parts.clock.seconds, parts.templates)
    gate = Gate(parts.admin_password, parts.viewer_password, clock=parts.clock.seconds)
    admin = AdminPages(gate, parts.storage, parts.reader, renderer, parts.config_dir,
                       parts.config_path, parts.reload_rules, parts.client_address,
                       parts.secure_cookies)
    pages = ReadPages(parts.storage, parts.reader, renderer, admin.visitor, parts.page_size)
    fixes = FixPages(admin, parts.storage, parts.writer, parts.clock.seconds, parts.commits)

    def page(**handlers: Any) -> Endpoint:
        return Endpoint(renderer.error_page, **handlers)

    def read_page(**handlers: Any) -> Endpoint:
        return Endpoint(renderer.error_page, guard=admin.reader, **handlers)

    def api(**handlers: Any) -> Endpoint:
        return Endpoint(renderer.error_page, as_json=True, guard=admin.reader, **handlers)

    weekly = read_page(get=pages.weekly)
    static = resource.Resource()
    for name, content_type in STATIC_FILES.items():
        static.putChild(name.encode(), StaticFile(os.path.join(renderer.directory, name),
                                                  content_type))
    api_root = resource.Resource()
    for path, child in {
        b"": api(get=pages.api_index),
        b"weekly_report": api(get=pages.weekly_api),
        b"error": api(get=pages.error_api),
        b"developer": api(get=pages.developer_api),
        b"health": api(get=parts.health.health),
        b"resolve": api(post=fixes.resolve_api),
        b"reopen": api(post=fixes.reopen_api),
    }.items():
        api_root.putChild(path, child)
    root = Root(page(get=_not_found, post=_not_found))
    for path, child in {
        b"": weekly,
        b"get_weekly_error_report": weekly,
        b"view_traceback": read_page(get=pages.traceback),
        b"developer": read_page(get=pages.developer),
        # open to monitors; it shows no error data
        b"check_health": Endpoint(renderer.error_page, as_json=True, get=parts.health.health),
        b"login": page(get=admin.login_form, post=admin.login),
        b"logout": page(post=admin.logout),
        b"add_known_error": page(get=admin.known_error_form, post=admin.add_known_error),
        b"rules": page(get=admin.rules, post=admin.add_rule),
        b"resolve_error": page(post=fixes.resolve),
        b"reopen_error": page(post=fixes.reopen),
        b"static": static,
        b"api": api_root,
    }.items():
        root.putChild(path, child)
    return root
