"""GitHub's REST API for the issue channel (github.com, or GitHub Enterprise's /api/v3).

Issues: ``POST /repos/OWNER/NAME/issues`` (201), ``GET``/``PATCH .../issues/N``, comments
``POST``/``GET .../issues/N/comments``; the label is listed with
``GET .../issues?labels=flawless&state=all`` (pull requests, which the list also holds, are
skipped). Limits: ``x-ratelimit-remaining`` and ``x-ratelimit-reset``, and the secondary
limits (403 or 429, with ``retry-after`` or without).
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Mapping

from flawless.server.delivery.channels.issues import PAGE_SIZE, Issue, TrackerApi
from flawless.server.delivery.facts import iso_utc
from flawless.server.delivery.issue_text import LABEL


class GitHubApi(TrackerApi):
    """One repository's issues."""

    title = "GitHub"
    remaining_header = "x-ratelimit-remaining"
    reset_header = "x-ratelimit-reset"

    def __init__(self, api_url: str, repo: str, token: str, **kwargs: Any):
        super().__init__(destination=repo, **kwargs)
        self._base = f"{api_url.rstrip('/')}/repos/{repo}"
        self._token = token

    def _headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28"}

    def _url(self, path: str) -> str:
        return self._base + path

    def _issue(self, data: Mapping[str, Any]) -> Issue:
        return Issue(int(data["number"]), str(data.get("html_url") or ""),
                     data.get("state") == "open", str(data.get("body") or ""))

    def _list_path(self, page: int) -> str:
        return "/issues?" + urllib.parse.urlencode({"labels": LABEL, "state": "all",
                                                    "per_page": PAGE_SIZE, "page": page})

    async def create(self, title: str, body: str) -> Issue:
        """Open an issue with the ``flawless`` label."""
        answer = await self.call("POST", "/issues", {"title": title, "body": body,
                                                     "labels": [LABEL]}, expect=(201,))
        return self._issue(self.json(answer))

    async def reopen(self, number: int) -> None:
        """Reopen a closed issue."""
        await self.call("PATCH", f"/issues/{number}", {"state": "open"}, expect=(200,))

    async def comment(self, number: int, body: str) -> None:
        """Add a comment to an issue."""
        await self.call("POST", f"/issues/{number}/comments", {"body": body}, expect=(201,))

    async def comments_since(self, number: int, since: float) -> list[str]:
        """The bodies of an issue's comments written since ``since`` (first page)."""
        query = urllib.parse.urlencode({"since": iso_utc(since), "per_page": PAGE_SIZE})
        items = self.json(await self.call("GET", f"/issues/{number}/comments?{query}"))
        return [str(item.get("body") or "") for item in items if isinstance(item, dict)] \
            if isinstance(items, list) else []
