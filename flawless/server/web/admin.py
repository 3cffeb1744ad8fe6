"""Logging in and out, who may read, and what only the admin may do: add rule entries.

Every state-changing request needs a live admin session and its CSRF token; without
``admin_password`` all of it is refused. With ``viewer_password`` set, every read page
needs a session (the viewer's or the admin's) and ``/api/`` a session or HTTP Basic
authentication with either password. Entries are appended to the rule files
(:mod:`flawless.server.rules.editing`) and applied at once.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Mapping, Optional

from twisted.logger import Logger
from twisted.web import server

from flawless.server.core.admission import address_group
from flawless.server.core.model import ErrorKey, ErrorRecord
from flawless.server.rules import editing
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner
from flawless.server.web.http import (Answer, HttpError, Params, cookie, json_error, redirect,
                                      safe_next)
from flawless.server.web.pages import error_key, find_error
from flawless.server.web.render import Renderer, Visitor
from flawless.server.web.sessions import (ADMIN, LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS,
                                          Gate, Session, TooManyAttempts, new_token,
                                          tokens_match)
from flawless.server.web.views import link

log = Logger()


class TooManyLogins(HttpError):
    """A login refused by the rate limit."""

    def __init__(self, retry_after: int):
        super().__init__(429, f"Too many failed logins. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class AdminPages:
    """Login, logout, the read guard and the rule forms."""

    def __init__(self, gate: Gate, storage: Storage, reader: Runner, renderer: Renderer,
                 config_dir: str, config_path: str, reload_rules: Callable[[], None],
                 client_address: Callable[[server.Request], str],
                 secure_cookies: bool = False):
        self._gate = gate
        self._storage = storage
        self._reader = reader
        self._renderer = renderer
        self._config_dir = config_dir
        self._config_path = config_path
        self._reload_rules = reload_rules
        self._client_address = client_address
        self._secure_cookies = secure_cookies

    def _session(self, request: server.Request) -> Optional[Session]:
        value = request.getCookie(SESSION_COOKIE.encode())
        return self._gate.session(value.decode("latin-1") if value else None)

    def visitor(self, request: server.Request) -> Visitor:
        """Who sent this request."""
        session = self._session(request)
        return Visitor(session.role, session.csrf_token) if session else Visitor()

    def _secure(self, request: server.Request) -> bool:
        """Whether cookies get ``Secure``: on TLS, or behind a TLS proxy (``hostname`` is
        ``https://``)."""
        return self._secure_cookies or request.isSecure()

    def _address(self, request: server.Request) -> str:
        return address_group(self._client_address(request))

    def _session_of(self, request: server.Request, params: Params) -> Session:
        """The session of a state-changing request, whose CSRF token must match."""
        session = self._session(request)
        if session is None:
            raise HttpError(401, "Log in first (your session may have expired).")
        if not tokens_match(session.csrf_token, params.text("csrf_token")):
            raise HttpError(403, "This form has expired. Reload the page and try again.")
        return session

    def _admin(self, request: server.Request, params: Params) -> Session:
        """The admin session of a state-changing request, whose CSRF token must match."""
        if not self._gate.admin_enabled:
            raise HttpError(403, "Changes from the dashboard are off: set admin_password in "
                                 "flawless.cfg and restart the server to turn them on.")
        session = self._session_of(request, params)
        if session.role != ADMIN:
            raise HttpError(403, "Only the admin may change rules: log in with the admin "
                                 "password.")
        return session

    def authorise(self, request: server.Request, params: Params) -> None:
        """Let a state-changing request through: an admin session with its CSRF token, or
        (for scripts calling ``/api/``) HTTP Basic authentication with the admin password."""
        if not (request.getHeader(b"authorization") or b"").lower().startswith(b"basic "):
            self._admin(request, params)
            return
        if not self._gate.admin_enabled:
            raise HttpError(403, "Changes are off: set admin_password in flawless.cfg.")
        try:
            role = self._basic_role(request)
        except TooManyAttempts as refused:
            raise TooManyLogins(refused.retry_after) from None
        if role != ADMIN:
            raise HttpError(401, "HTTP Basic authentication must carry the admin password.")

    def _disabled(self, visitor: Visitor) -> Answer:
        return self._renderer.render("page_disabled.html", visitor, 403,
                                     config_path=self._config_path or "flawless.cfg")

    def _here(self, request: server.Request) -> str:
        return request.uri.decode("utf-8", "replace")

    def _login_first(self, request: server.Request) -> Answer:
        return redirect(link("/login", next=self._here(request)))

    async def _admin_page(self, request: server.Request) -> Optional[Answer]:
        """What a visitor who may not open an admin page gets instead, or None."""
        visitor = self.visitor(request)
        if not self._gate.admin_enabled:
            return self._disabled(visitor)
        if visitor.admin:
            return None
        if visitor.logged_in:
            return await self.login_form(request, "This page needs the admin password.", 403,
                                         self._here(request))
        return self._login_first(request)

    # -- who may read --

    def reader(self, request: server.Request, as_json: bool) -> Optional[Answer]:
        """The guard of every read page and of ``/api/``: with ``viewer_password`` set, a
        login (a session, or HTTP Basic on the API) is needed; None lets the request in."""
        if not self._gate.viewer_required or self._session(request) is not None:
            return None
        if not as_json:
            return self._login_first(request)
        try:
            if self._basic_role(request) is not None:
                return None
        except TooManyAttempts as refused:
            answer = json_error(429, str(refused))
            return Answer(answer.status, answer.body, answer.content_type,
                          (("retry-after", str(refused.retry_after)),))
        answer = json_error(401, "Log in first: a session cookie from /login, or HTTP Basic "
                                 "authentication with the viewer's or the admin's password.")
        return Answer(answer.status, answer.body, answer.content_type,
                      (("www-authenticate", 'Basic realm="flawless", charset="UTF-8"'),))

    def _basic_role(self, request: server.Request) -> Optional[str]:
        header = request.getHeader(b"authorization") or b""
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self._gate.role_of(self._address(request), decoded.partition(":")[2])

    # -- login --

    async def login_form(self, request: server.Request, problem: str = "",
                         status: int = 200, next_path: Optional[str] = None) -> Answer:
        """``/login``: the password form (its token doubles as a login-CSRF cookie)."""
        visitor = self.visitor(request)
        if not self._gate.enabled:
            return self._disabled(visitor)
        token = new_token()
        if next_path is None:
            next_path = Params(request.args).text("next", default="/")
        answer = self._renderer.render(
            "page_login.html", visitor, status, login_token=token, problem=problem,
            next=safe_next(next_path), admin_enabled=self._gate.admin_enabled,
            viewer_required=self._gate.viewer_required)
        return Answer(answer.status, answer.body, answer.content_type, (
            ("set-cookie", cookie(LOGIN_COOKIE, token, 3600, self._secure(request))),))

    async def login(self, request: server.Request) -> Answer:
        """POST ``/login``: check the password, open a session, go back where one came from."""
        params = Params(request.args)
        if not self._gate.enabled:
            return self._disabled(Visitor())
        sent_cookie = request.getCookie(LOGIN_COOKIE.encode())
        if not tokens_match(sent_cookie.decode("latin-1") if sent_cookie else None,
                            params.text("login_token")):
            return await self.login_form(request, "The login form expired; try again.", 403)
        try:
            session = self._gate.login(self._address(request), params.text("password"))
        except TooManyAttempts as refused:
            raise TooManyLogins(refused.retry_after) from None
        if session is None:
            return await self.login_form(request, "Wrong password.", 401)
        secure = self._secure(request)
        return redirect(safe_next(params.text("next", default="/")),
                        cookie(SESSION_COOKIE, session.session_id, SESSION_SECONDS, secure),
                        cookie(LOGIN_COOKIE, "", 0, secure))

    async def logout(self, request: server.Request) -> Answer:
        """POST ``/logout``."""
        session = self._session_of(request, Params(request.args))
        self._gate.logout(session.session_id)
        return redirect("/", cookie(SESSION_COOKIE, "", 0, self._secure(request)))

    # -- the known-error form --

    def _known_error_page(self, visitor: Visitor, key: ErrorKey, line_number: Optional[int],
                          values: Optional[Mapping[str, str]] = None,
                          errors: Optional[Mapping[str, str]] = None,
                          status: int = 200) -> Answer:
        """The known-error form, prefilled with the error a link names."""
        try:
            record: Optional[ErrorRecord] = find_error(self._storage, key, line_number) \
                if key.filename else None
        except HttpError:
            record = None
        prefill = {"filename": key.filename, "function_name": key.function_name,
                   "code_fragment": key.text}
        return self._renderer.render(
            "page_known_error.html", visitor, status, record=record,
            rule=editing.RULE_FILES["known_errors"],
            values=values if values is not None else prefill, errors=errors or {},
            line_number=line_number)

    async def known_error_form(self, request: server.Request) -> Answer:
        """``/add_known_error``: the form prefilled from the email's link."""
        refusal = await self._admin_page(request)
        if refusal is not None:
            return refusal
        key, line_number = error_key(Params(request.args), required=False)
        return await self._reader.run(self._known_error_page, self.visitor(request), key,
                                      line_number)

    async def add_known_error(self, request: server.Request) -> Answer:
        """POST ``/add_known_error``."""
        params = Params(request.args)
        self._admin(request, params)
        visitor = self.visitor(request)
        form = params.form()
        line_number = params.positive_int("line_number")
        try:
            entry = editing.entry_from_form("known_errors", form)
        except editing.FormInvalid as invalid:
            key = ErrorKey(form.get("filename", ""), form.get("function_name", ""),
                           form.get("code_fragment", ""))
            return await self._reader.run(self._known_error_page, visitor, key, line_number,
                                          form, invalid.errors, 400)
        await self._save("known_errors", entry)
        back = link("/view_traceback", filename=form.get("filename"),
                    function_name=form.get("function_name", ""), text=form.get("code_fragment"),
                    line_number=line_number) if form.get("function_name") else "/"
        return self._saved_page(visitor, "known_errors", entry, back)

    # -- every rule file --

    def _rules_page(self, visitor: Visitor, forms: Mapping[str, Mapping[str, str]],
                    errors: Mapping[str, Mapping[str, str]], status: int = 200) -> Answer:
        """Every rule file: its entries and a form to add one."""
        files = []
        for kind, rule in editing.RULE_FILES.items():
            entries: Any
            try:
                entries, problem = editing.read_entries(self._config_dir, kind), ""
            except editing.RuleFileError as error:
                entries, problem = [], str(error)
            if isinstance(entries, Mapping):
                entries = [f"{source} → {target}" for source, target in entries.items()]
            files.append({"rule": rule, "entries": entries, "problem": problem,
                          "form_values": forms.get(kind, {}),
                          "form_errors": errors.get(kind, {})})
        return self._renderer.render("page_rules.html", visitor, status, files=files,
                                     config_dir=self._config_dir)

    async def rules(self, request: server.Request) -> Answer:
        """``/rules``: every rule file with a form to add an entry."""
        refusal = await self._admin_page(request)
        if refusal is not None:
            return refusal
        return await self._reader.run(self._rules_page, self.visitor(request), {}, {})

    async def add_rule(self, request: server.Request) -> Answer:
        """POST ``/rules``: add one entry to the rule file the form names."""
        params = Params(request.args)
        self._admin(request, params)
        visitor = self.visitor(request)
        kind = params.text("kind", required=True)
        if kind not in editing.RULE_FILES:
            raise HttpError(400, f"There is no rule file of kind '{kind}'.")
        form = params.form()
        try:
            entry = editing.entry_from_form(kind, form)
        except editing.FormInvalid as invalid:
            return await self._reader.run(self._rules_page, visitor, {kind: form},
                                          {kind: invalid.errors}, 400)
        await self._save(kind, entry)
        return self._saved_page(visitor, kind, entry, "/rules")

    def _saved_page(self, visitor: Visitor, kind: str, entry: editing.Entry,
                    back: str) -> Answer:
        return self._renderer.render("page_saved.html", visitor,
                                     rule=editing.RULE_FILES[kind],
                                     entry_text=editing.entry_text(kind, entry), back=back)

    async def _save(self, kind: str, entry: editing.Entry) -> None:
        try:
            path = await self._reader.run(editing.add_entry, self._config_dir, kind, entry)
        except editing.DuplicateEntry as duplicate:
            raise HttpError(409, f"Nothing changed: {duplicate}.") from None
        except editing.RuleFileError as problem:
            raise HttpError(409, f"Nothing changed: {problem}") from None
        log.info("dashboard added an entry to {path}", path=path)
        # Apply it now rather than at the next poll, so that the very next report follows it.
        self._reload_rules()
