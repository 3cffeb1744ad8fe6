"""GitLab's REST API (v4) for the issue channel.

Issues: ``POST /api/v4/projects/ID/issues`` (201), ``GET``/``PUT .../issues/IID``
(``state_event=reopen``), notes ``POST``/``GET .../issues/IID/notes``; the label is listed
with ``GET .../issues?labels=flawless&state=all&scope=all``. The project is its numeric id
or its path, URL-encoded. Limits: 429 with ``Retry-After``, ``RateLimit-Remaining`` and
``RateLimit-Reset``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Mapping

from flawless.server.delivery.channels.issues import PAGE_SIZE, Issue, TrackerApi
from flawless.server.delivery.issue_text import LABEL


class GitLabApi(TrackerApi):
    """One project's issues."""

    title = "GitLab"
    remaining_header = "ratelimit-remaining"
    reset_header = "ratelimit-reset"

    def __init__(self, gitlab_url: str, project: str, token: str, **kwargs: Any):
        super().__init__(destination=self.destination_of(gitlab_url, project), **kwargs)
        self._base = (f"{gitlab_url.rstrip('/')}/api/v4/projects/"
                      f"{urllib.parse.quote(project, safe='')}")
        self._token = token

    @staticmethod
    def destination_of(gitlab_url: str, project: str) -> str:
        """How a project is named: HOST/PROJECT."""
        return f"{urllib.parse.urlsplit(gitlab_url).hostname or gitlab_url}/{project}"

    def _headers(self) -> Mapping[str, str]:
        return {"PRIVATE-TOKEN": self._token}

    def _url(self, path: str) -> str:
        return self._base + path

    def _issue(self, data: Mapping[str, Any]) -> Issue:
        return Issue(int(data["iid"]), str(data.get("web_url") or ""),
                     data.get("state") == "opened", str(data.get("description") or ""))

    def _list_path(self, page: int) -> str:
        return "/issues?" + urllib.parse.urlencode({"labels": LABEL, "state": "all",
                                                    "scope": "all", "per_page": PAGE_SIZE,
                                                    "page": page})

    async def create(self, title: str, body: str) -> Issue:
        """Open an issue with the ``flawless`` label."""
        answer = await self.call("POST", "/issues", {"title": title, "description": body,
                                                     "labels": LABEL}, expect=(201,))
        return self._issue(self.json(answer))

    async def reopen(self, number: int) -> None:
        """Reopen a closed issue."""
        await self.call("PUT", f"/issues/{number}", {"state_event": "reopen"}, expect=(200,))

    async def comment(self, number: int, body: str) -> None:
        """Add a note to an issue."""
        await self.call("POST", f"/issues/{number}/notes", {"body": body}, expect=(201,))

    async def comments_since(self, number: int, since: float) -> list[str]:
        """The bodies of an issue's most recent notes (newest first, one page)."""
        query = urllib.parse.urlencode({"sort": "desc", "order_by": "created_at",
                                        "per_page": PAGE_SIZE})
        items = self.json(await self.call("GET", f"/issues/{number}/notes?{query}"))
        return [str(item.get("body") or "") for item in items if isinstance(item, dict)] \
            if isinstance(items, list) else []
