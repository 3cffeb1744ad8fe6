"""Marking an error resolved, optionally fixed in a commit, and reopening it: from the
error's page (a form) and from ``/api/`` (for scripts: HTTP Basic authentication with the
admin password).

Whether a later occurrence is a regression or an old deployment is the processor's to say
(:mod:`flawless.server.core.fixes`); here only the resolution is stored.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Optional

from twisted.internet import defer
from twisted.web import server

from flawless.server.core.model import CommitInfo, ErrorKey, ErrorRecord, Resolution
from flawless.server.git.repository import RepositoryUnavailable
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner
from flawless.server.web.admin import AdminPages
from flawless.server.web.http import Answer, HttpError, Params, json_answer, redirect
from flawless.server.web.pages import error_key, find_error
from flawless.server.web.views import error_json, error_params, link, resolution_json

_REVISION = re.compile(r"[0-9a-fA-F]{4,40}")
Commits = Callable[[str], defer.Deferred]   # hex revision -> Optional[CommitInfo]


class FixPages:
    """``/resolve_error``, ``/reopen_error`` and their ``/api/`` twins."""

    def __init__(self, admin: AdminPages, storage: Storage, writer: Runner,
                 clock: Callable[[], float], commits: Optional[Commits]):
        self._admin = admin
        self._storage = storage
        self._writer = writer
        self._clock = clock
        self._commits = commits

    async def resolve(self, request: server.Request) -> Answer:
        """POST ``/resolve_error``: back to the error's page, now resolved."""
        record, _ = await self._resolve(request, "the dashboard")
        return redirect(link("/view_traceback", **error_params(record)))

    async def reopen(self, request: server.Request) -> Answer:
        """POST ``/reopen_error``: back to the error's page, open again."""
        record, _ = await self._reopen(request)
        return redirect(link("/view_traceback", **error_params(record)))

    async def resolve_api(self, request: server.Request) -> Answer:
        """POST ``/api/resolve``: the error and its resolution as JSON."""
        return self._json(*await self._resolve(request, "the API"))

    async def reopen_api(self, request: server.Request) -> Answer:
        """POST ``/api/reopen``."""
        return self._json(*await self._reopen(request))

    @staticmethod
    def _json(record: ErrorRecord, resolution: Resolution) -> Answer:
        return json_answer({"error": error_json(record),
                            "resolution": resolution_json(resolution)})

    async def _resolve(self, request: server.Request,
                       source: str) -> tuple[ErrorRecord, Resolution]:
        params = Params(request.args)
        self._admin.authorise(request, params)
        key, line_number = error_key(params)
        commit = await self._fix_commit(params.text("fix_commit").strip())
        resolution = Resolution(
            resolved_at=self._clock(), source=source,
            fix_commit=commit.sha if commit else None,
            fix_author_name=commit.author_name if commit else None,
            fix_author_email=commit.author_email if commit else None)
        return await self._writer.run(self._store, key, line_number,
                                      lambda current: resolution)

    async def _reopen(self, request: server.Request) -> tuple[ErrorRecord, Resolution]:
        params = Params(request.args)
        self._admin.authorise(request, params)
        key, line_number = error_key(params)

        def reopened(current: Optional[Resolution]) -> Resolution:
            if current is None or not current.resolved:
                raise HttpError(409, "This error is not marked resolved.")
            return replace(current, resolved_at=None)

        return await self._writer.run(self._store, key, line_number, reopened)

    async def _fix_commit(self, revision: str) -> Optional[CommitInfo]:
        """The commit the admin named as the fix, checked against the repository."""
        if not revision:
            return None
        if not _REVISION.fullmatch(revision):
            raise HttpError(400, "The fix commit must be a commit sha: 4 to 40 hex digits.")
        if self._commits is None:
            raise HttpError(400, "No repository is configured (repo_dir), so no fix commit "
                                 "can be named; mark the error resolved without one.")
        try:
            commit = await self._commits(revision)
        except RepositoryUnavailable as unavailable:
            raise HttpError(503, f"The repository cannot be read right now: {unavailable}"
                            ) from None
        if commit is None:
            raise HttpError(400, f"{revision} is not a commit of the repository (has it been "
                                 "fetched?).")
        return commit

    def _store(self, key: ErrorKey, line_number: Optional[int],
               change: Callable[[Optional[Resolution]], Resolution]
               ) -> tuple[ErrorRecord, Resolution]:
        """Apply ``change`` to the error's resolution in one transaction (the writer's)."""
        record = find_error(self._storage, key, line_number)
        with self._storage.transaction() as transaction:
            current = transaction.resolutions([record.error_id]).get(record.error_id)
            resolution = change(current)
            transaction.save_resolution(record.error_id, resolution)
        return record, resolution

