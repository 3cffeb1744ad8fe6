"""Slack, a webhook receiver, GitHub and GitLab as small fakes that speak their real APIs
(paths, status codes, headers, rate-limit answers) and record what they were sent.

Each fake is one ``handle(method, target, headers, body) -> Reply`` that is served two ways:
on a loopback port by the standard library's HTTP server (for a server run as a process),
or in memory as a twisted.web resource for treq's StubTreq (for in-process tests with a
task.Clock). Both are thread-safe.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from twisted.web import resource, server

from support.smtp import free_port


@dataclass
class Request:
    """One request a fake got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]   # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """One answer of a fake."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def of_json(status: int, data: Any, **headers: str) -> "Reply":
        return Reply(status, json.dumps(data).encode(),
                     {"Content-Type": "application/json; charset=utf-8", **headers})


class Fake:
    """What every fake shares: a log of requests and scripted answers ahead of the API."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.scripted: list[Reply] = []     # answered first, one per request, in order
        self.clock = clock

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urllib.parse.urlsplit(target)
        request = Request(method, parts.path, dict(urllib.parse.parse_qsl(parts.query)),
                          {name.lower(): value for name, value in headers.items()}, body)
        with self.lock:
            self.requests.append(request)
            if self.scripted:
                return self.scripted.pop(0)
            return self.answer(request)

    def answer(self, request: Request) -> Reply:
        raise NotImplementedError

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, whatever they ask."""
        with self.lock:
            self.scripted.extend(replies)


# -- Slack -----------------------------------------------------------------------------------

SLACK_PATH = "/services/T0FLAWLESS/B0FLAWLESS/s3cr3tW3bh00kT0k3n"


class FakeSlack(Fake):
    """An incoming webhook: ``200 ok`` for a valid payload, Slack's error codes otherwise."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[dict[str, Any]] = []

    def answer(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != SLACK_PATH:
            return Reply(404, b"no_service")
        try:
            payload = request.json()
        except ValueError:
            return Reply(400, b"invalid_payload")
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return Reply(400, b"no_text")
        self.messages.append(payload)
        return Reply(200, b"ok", {"Content-Type": "text/html"})

    @staticmethod
    def rate_limited(seconds: int) -> Reply:
        return Reply(429, b"rate_limited", {"Retry-After": str(seconds)})


# -- a webhook receiver ----------------------------------------------------------------------

class FakeReceiver(Fake):
    """A webhook endpoint that accepts every POST (the tests verify the signatures)."""

    def answer(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(405)
        return Reply(204)

    @property
    def deliveries(self) -> list[Request]:
        with self.lock:
            return [request for request in self.requests if request.method == "POST"]


# -- issue trackers --------------------------------------------------------------------------

@dataclass
class TrackedIssue:
    number: int
    title: str
    body: str
    labels: list[str]
    open: bool = True
    comments: list[tuple[float, str]] = field(default_factory=list)
    pull_request: bool = False


class FakeTracker(Fake):
    """An issue tracker's issues, comments and rate limits; subclasses speak GitHub or
    GitLab."""

    def __init__(self, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.issues: dict[int, TrackedIssue] = {}
        self.remaining = 5000
        self.reset_at: Optional[int] = None

    def add_issue(self, title: str, body: str, labels: list[str], **changes: Any) -> TrackedIssue:
        issue = TrackedIssue(len(self.issues) + 1, title, body, labels, **changes)
        self.issues[issue.number] = issue
        return issue

    @property
    def writes(self) -> list[Request]:
        with self.lock:
            return [request for request in self.requests if request.method != "GET"]

    def labelled(self, label: str, page: int, per_page: int) -> list[TrackedIssue]:
        found = [issue for issue in sorted(self.issues.values(), key=lambda i: -i.number)
                 if label in issue.labels]
        return found[(page - 1) * per_page:page * per_page]


class FakeGitHub(FakeTracker):
    """GitHub's REST API for the issues of one repository."""

    def __init__(self, repo: str = "acme/shop", token: str = "ghp_F4keT0kenF0rTests0nly",
                 **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.repo = repo

    def url_of(self, number: int) -> str:
        return f"https://github.test/{self.repo}/issues/{number}"

    def json_of(self, issue: TrackedIssue) -> dict[str, Any]:
        data = {"number": issue.number, "title": issue.title, "body": issue.body,
                "state": "open" if issue.open else "closed", "html_url": self.url_of(issue.number),
                "labels": [{"name": name} for name in issue.labels]}
        if issue.pull_request:
            data["pull_request"] = {"url": "..."}
        return data

    def limits(self) -> dict[str, str]:
        """The primary rate limit: 5,000 requests an hour, counted down to the reset."""
        now = int(self.clock())
        if self.reset_at is None:
            self.reset_at = now + 3600
        elif now >= self.reset_at:
            self.reset_at, self.remaining = now + 3600, 5000
        self.remaining = max(0, self.remaining - 1)
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(self.remaining),
                "x-ratelimit-reset": str(self.reset_at)}

    @staticmethod
    def secondary_limit(seconds: Optional[int] = 60, status: int = 403) -> Reply:
        headers = {"retry-after": str(seconds)} if seconds is not None else {}
        return Reply.of_json(status, {"message": "You have exceeded a secondary rate limit. "
                                                 "Please wait a few minutes before you try again."},
                             **headers)

    def primary_limit(self, reset_in: int) -> Reply:
        return Reply.of_json(403, {"message": "API rate limit exceeded"},
                             **{"x-ratelimit-remaining": "0",
                                "x-ratelimit-reset": str(int(self.clock()) + reset_in)})

    def answer(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply.of_json(401, {"message": "Bad credentials"})
        if not request.headers.get("user-agent"):
            return Reply(403, b"Request forbidden by administrative rules.")
        base = f"/repos/{self.repo}/issues"
        match = re.fullmatch(re.escape(base) + r"(?:/(\d+)(/comments)?)?", request.path)
        if match is None:
            return Reply.of_json(404, {"message": "Not Found"})
        number, comments = match.group(1), match.group(2)
        limits = self.limits()
        if number is None:
            if request.method == "POST":
                data = request.json()
                issue = self.add_issue(data["title"], data.get("body") or "",
                                       list(data.get("labels") or []))
                return Reply.of_json(201, self.json_of(issue), **limits)
            if request.method == "GET":
                page = int(request.query.get("page", "1"))
                per_page = int(request.query.get("per_page", "30"))
                items = self.labelled(request.query.get("labels", ""), page, per_page) \
                    if request.query.get("state") == "all" else []
                return Reply.of_json(200, [self.json_of(item) for item in items], **limits)
            return Reply.of_json(405, {"message": "Method Not Allowed"})
        issue = self.issues.get(int(number))
        if issue is None:
            return Reply.of_json(404, {"message": "Not Found"}, **limits)
        if comments:
            if request.method == "POST":
                issue.comments.append((self.clock(), request.json()["body"]))
                return Reply.of_json(201, {"id": len(issue.comments),
                                           "body": issue.comments[-1][1]}, **limits)
            return Reply.of_json(200, [{"body": body} for _, body in issue.comments], **limits)
        if request.method == "PATCH":
            issue.open = request.json().get("state", "open") == "open"
            return Reply.of_json(200, self.json_of(issue), **limits)
        return Reply.of_json(200, self.json_of(issue), **limits)


class FakeGitLab(FakeTracker):
    """GitLab's REST API (v4) for the issues of one project."""

    def __init__(self, project: str = "acme/shop", token: str = "glpat-F4keT0kenF0rTests",
                 **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.project = project

    def json_of(self, issue: TrackedIssue) -> dict[str, Any]:
        return {"id": 1000 + issue.number, "iid": issue.number, "title": issue.title,
                "description": issue.body, "state": "opened" if issue.open else "closed",
                "labels": issue.labels,
                "web_url": f"https://gitlab.test/{self.project}/-/issues/{issue.number}"}

    @staticmethod
    def rate_limited(seconds: int) -> Reply:
        return Reply(429, b"Retry later", {"Retry-After": str(seconds),
                                            "RateLimit-Remaining": "0"})

    def answer(self, request: Request) -> Reply:
        if request.headers.get("private-token") != self.token:
            return Reply.of_json(401, {"message": "401 Unauthorized"})
        base = "/api/v4/projects/" + urllib.parse.quote(self.project, safe="")
        match = re.fullmatch(re.escape(base) + r"/issues(?:/(\d+)(/notes)?)?",
                             request.path.replace("%2f", "%2F"))
        if match is None:
            return Reply.of_json(404, {"message": "404 Project Not Found"})
        number, notes = match.group(1), match.group(2)
        limits = {"RateLimit-Limit": "2000", "RateLimit-Remaining": "1999",
                  "RateLimit-Reset": str(int(self.clock()) + 60)}
        if number is None:
            if request.method == "POST":
                data = request.json()
                issue = self.add_issue(data["title"], data.get("description") or "",
                                       [label for label in str(data.get("labels", "")).split(",")
                                        if label])
                return Reply.of_json(201, self.json_of(issue), **limits)
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", "20"))
            items = self.labelled(request.query.get("labels", ""), page, per_page) \
                if request.query.get("state") in ("all", None) else []
            return Reply.of_json(200, [self.json_of(item) for item in items], **limits)
        issue = self.issues.get(int(number))
        if issue is None:
            return Reply.of_json(404, {"message": "404 Not found"}, **limits)
        if notes:
            if request.method == "POST":
                issue.comments.append((self.clock(), request.json()["body"]))
                return Reply.of_json(201, {"id": len(issue.comments),
                                           "body": issue.comments[-1][1]}, **limits)
            newest = [{"body": body} for _, body in reversed(issue.comments)]
            return Reply.of_json(200, newest, **limits)
        if request.method == "PUT":
            event = request.json().get("state_event")
            issue.open = True if event == "reopen" else False if event == "close" else issue.open
        return Reply.of_json(200, self.json_of(issue), **limits)


# -- serving ---------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: Fake

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.fake.handle(self.command, self.path, dict(self.headers.items()), body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_PUT = _serve  # noqa: N815 - the stdlib's names

    def log_message(self, *args: Any) -> None:
        pass


class LoopbackServer:
    """A fake on a loopback port, in a thread; it can stop and start again on that port."""

    def __init__(self, fake: Fake, port: Optional[int] = None) -> None:
        self.fake = fake
        self.port = port or free_port()
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LoopbackServer":
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class FakeResource(resource.Resource):
    """A fake as a twisted.web resource (for treq's StubTreq): one per host name."""

    isLeaf = True

    def __init__(self, fakes: dict[str, Fake]) -> None:
        super().__init__()
        self.fakes = fakes

    def render(self, request: server.Request) -> bytes:
        host = (request.getHeader("host") or "").split(":")[0]
        fake = self.fakes.get(host)
        if fake is None:
            request.setResponseCode(502)
            return b"no such host"
        headers = {name.decode(): values[-1].decode()
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        reply = fake.handle(request.method.decode(), request.uri.decode(), headers,
                            request.content.read())
        request.setResponseCode(reply.status)
        for name, value in reply.headers.items():
            request.setHeader(name, value)
        return reply.body
