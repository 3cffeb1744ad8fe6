"""Issue trackers as a channel (GitHub, GitLab): one issue per error, comments after.

The link error -> issue is kept in the database. Without one, the tracker's issues with the
``flawless`` label are listed (never searched: a search index lags and would let duplicates
through) and every issue whose hidden marker names an error is linked again: at the first
issue this process opens, and whenever an earlier attempt may have reached the tracker (a
timeout, a crash between its answer and our record of it). A comment is looked for the same
way before it is written again, so even the one repeat a crash allows is avoided. A closed
issue whose error comes back is reopened with a comment; a deleted one is opened anew.

Trackers limit writes: requests that create content are spaced (``request_interval``), an
answer saying the limit is spent (``retry-after``, ``x-ratelimit-remaining: 0`` with its
reset time, GitHub's secondary limits) holds the tracker as long as it asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from twisted.internet import defer, task

from flawless.server.delivery.channels import DeliveryError
from flawless.server.delivery.channels.http import (DEFAULT_WAIT_SECONDS, Answer, HttpClient,
                                                    retry_after)
from flawless.server.delivery.issue_text import REOPENED_NOTE, IssueDocument, find_marker
from flawless.server.storage.interface import Storage
from flawless.server.storage.records import IssueLink, OutboxMail
from flawless.server.threads import Runner

PAGE_SIZE = 100
MAX_PAGES = 50          # the label is listed up to 5,000 issues deep
COMMENT_LOOKBACK = 7 * 86400.0  # a repeated comment is looked for among this recent ones


@dataclass(frozen=True)
class Issue:
    """An issue as the tracker describes it."""

    number: int
    url: str
    open: bool
    body: str


class TrackerApi:
    """The requests of one tracker; subclasses say where and how (GitHub, GitLab)."""

    title = "tracker"            # for messages: GitHub, GitLab
    remaining_header = ""        # the header saying how many requests are left
    reset_header = ""            # ... and when the count is reset (epoch seconds)

    def __init__(self, http: HttpClient, clock: Any, destination: str,
                 request_interval: float):
        self.destination = destination
        self._http = http
        self._clock = clock
        self._interval = request_interval
        self._last_write = float("-inf")
        self._blocked_until = 0.0

    # -- what each tracker defines --

    def _headers(self) -> Mapping[str, str]:
        raise NotImplementedError

    def _url(self, path: str) -> str:
        raise NotImplementedError

    def _issue(self, data: Mapping[str, Any]) -> Issue:
        raise NotImplementedError

    async def create(self, title: str, body: str) -> Issue:
        """Open an issue with the ``flawless`` label."""
        raise NotImplementedError

    async def reopen(self, number: int) -> None:
        """Reopen a closed issue."""
        raise NotImplementedError

    async def comment(self, number: int, body: str) -> None:
        """Add a comment to an issue."""
        raise NotImplementedError

    async def comments_since(self, number: int, since: float) -> list[str]:
        """The bodies of an issue's comments written since ``since``."""
        raise NotImplementedError

    def _list_path(self, page: int) -> str:
        raise NotImplementedError

    # -- shared --

    async def get(self, number: int) -> Optional[Issue]:
        """The issue, or None when it is gone (deleted, moved, or never was)."""
        answer = await self.call("GET", f"/issues/{number}", expect=(200, 301, 404, 410))
        return self._issue(self.json(answer)) if answer.status == 200 else None

    async def labelled(self) -> list[Issue]:
        """Every issue with the ``flawless`` label, open or closed (up to a bound)."""
        found: list[Issue] = []
        for page in range(1, MAX_PAGES + 1):
            items = self.json(await self.call("GET", self._list_path(page)))
            if not isinstance(items, list):
                raise DeliveryError(f"{self.title} {self.destination}: the issue list is not "
                                    "a list")
            found += [self._issue(item) for item in items
                      if isinstance(item, dict) and "pull_request" not in item]
            if len(items) < PAGE_SIZE:
                break
        return found

    async def call(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None,
                   expect: tuple[int, ...] = (200, 201)) -> Answer:
        """One request; fails with DeliveryError on an unexpected status, asking to wait
        when the tracker's limits say so."""
        what = f"{self.title} {self.destination}"
        now = self._clock.seconds()
        if now < self._blocked_until:
            raise DeliveryError(f"{what}: rate limit spent until the reset",
                                retry_after=self._blocked_until - now)
        if method != "GET":
            pause = self._last_write + self._interval - now
            if pause > 0:
                await task.deferLater(self._clock, pause, lambda: None)
            self._last_write = self._clock.seconds()
        answer = await self._http.request(
            method, self._url(path), what, headers=self._headers(),
            body=None if body is None else json.dumps(body).encode("utf-8"))
        wait = self._limit_wait(answer)
        if answer.status in expect:
            return answer
        if wait is not None:
            raise DeliveryError(f"{what}: rate limited ({answer.status}), waiting {wait:.0f}s",
                                retry_after=wait)
        raise DeliveryError(self._http.redact(f"{what}: {method} answered HTTP "
                                              f"{answer.status} {answer.snippet()}"))

    def _limit_wait(self, answer: Answer) -> Optional[float]:
        """How long the tracker asks us to wait, if it does; remembers a spent limit."""
        now = self._clock.seconds()
        remaining = answer.headers.get(self.remaining_header, "").strip()
        reset = answer.headers.get(self.reset_header, "").strip()
        spent = remaining == "0" and reset.isdigit()
        if spent:
            self._blocked_until = max(self._blocked_until, float(reset))
        if answer.status not in (403, 429):
            return None
        asked = retry_after(answer.headers, now)
        if asked is not None:
            return asked
        if spent:
            return max(0.0, self._blocked_until - now)
        if answer.status == 429 or b"rate limit" in answer.body.lower():
            return DEFAULT_WAIT_SECONDS   # a secondary limit: at least a minute, GitHub says
        return None

    def json(self, answer: Answer) -> Any:
        """The answer's JSON body."""
        try:
            return json.loads(answer.body)
        except ValueError:
            raise DeliveryError(f"{self.title} {self.destination}: the answer is not JSON "
                                f"(HTTP {answer.status})") from None


class IssueChannel:
    """Delivers issue documents to one tracker, keeping the link error -> issue."""

    looks_before_repeating = True

    def __init__(self, name: str, api: TrackerApi, storage: Storage, reader: Runner,
                 writer: Runner, clock: Any):
        self.name = name
        self.destination = api.destination
        self._api = api
        self._storage = storage
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._listed = False   # the label listed once by this process

    def deliver(self, entry: OutboxMail) -> defer.Deferred:
        """Open the entry's issue, or comment on it (reopening it when closed)."""
        return defer.ensureDeferred(self._deliver(entry))

    async def _deliver(self, entry: OutboxMail) -> None:
        if entry.destination != self.destination:
            raise DeliveryError(f"{self.name} {entry.destination} is no longer configured")
        document = IssueDocument.decode(entry.message)
        # an earlier attempt may have reached the tracker: look before writing again
        uncertain = entry.interrupted or entry.attempts > 0
        link = None
        if document.fingerprint is not None:
            link = await self._reader.run(self._storage.issue_link, self.name,
                                          self.destination, document.fingerprint)
        if link is None and (uncertain or not self._listed):
            written = await self._recover()
            if entry.message_id in written:
                return   # this very entry opened its issue before
            if document.fingerprint is not None:
                link = await self._reader.run(self._storage.issue_link, self.name,
                                              self.destination, document.fingerprint)
        if link is None:
            await self._open(document)
            return
        issue = await self._api.get(link.number)
        if issue is None:
            await self._writer.run(self._storage.forget_issue_link, link)
            await self._open(document)
            return
        if uncertain and (_written_by(issue.body, entry)
                          or await self._commented(link.number, entry)):
            return   # an earlier attempt of this entry opened the issue or commented
        comment = document.comment
        if not issue.open:
            await self._api.reopen(link.number)
            comment = f"{REOPENED_NOTE}\n\n{comment}"
        await self._api.comment(link.number, comment)

    async def _open(self, document: IssueDocument) -> None:
        issue = await self._api.create(document.title, document.body)
        if document.fingerprint is not None:
            await self._writer.run(self._storage.save_issue_links, [IssueLink(
                self.name, self.destination, document.fingerprint, issue.number, issue.url)],
                self._clock.seconds())

    async def _recover(self) -> set[str]:
        """Link every labelled issue whose marker names an error (the lowest number wins
        when there are several); return the entries that wrote an issue."""
        issues = await self._api.labelled()
        self._listed = True
        links: dict[str, IssueLink] = {}
        written: set[str] = set()
        for issue in sorted(issues, key=lambda found: found.number, reverse=True):
            marker = find_marker(issue.body)
            if marker is None:
                continue
            written.add(marker.entry)
            if marker.fingerprint is not None:
                links[marker.fingerprint] = IssueLink(self.name, self.destination,
                                                      marker.fingerprint, issue.number,
                                                      issue.url)
        if links:
            await self._writer.run(self._storage.save_issue_links, list(links.values()),
                                   self._clock.seconds())
        return written

    async def _commented(self, number: int, entry: OutboxMail) -> bool:
        """Whether a comment written by ``entry`` is on the issue already."""
        since = self._clock.seconds() - COMMENT_LOOKBACK
        bodies = await self._api.comments_since(number, since)
        return any(_written_by(body, entry) for body in bodies)


def _written_by(body: str, entry: OutboxMail) -> bool:
    """Whether an issue body or comment was written by ``entry``."""
    marker = find_marker(body)
    return marker is not None and marker.entry == entry.message_id
