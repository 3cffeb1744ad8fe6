"""The issues and comments flawless writes in GitHub and GitLab (both render Markdown).

Every text a report or a commit carries goes into a code block or code span, where neither
Markdown, HTML nor an @mention applies. Each issue body and comment ends with a hidden
marker naming the error (``fingerprint``) and the outbox entry that wrote it (``entry``): the
link error -> issue is recovered from it, and a write repeated after a crash is recognised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from flawless.server.core.text import counted
from flawless.server.delivery.facts import AlertFacts, Held, cut, held_lines, occurrences
from flawless.server.delivery.render import utc_time

TITLE_CHARS = 255          # GitLab's limit (GitHub's is 256)
MESSAGE_CHARS = 2000
FRAME_TEXT_CHARS = 300
FRAMES_SHOWN = 40
DIGEST_ITEMS = 1000
LABEL = "flawless"
_MARKER = re.compile(r"<!-- flawless(?: fingerprint=([0-9a-f]{1,64}))? entry=([\w-]{1,100}) -->")


@dataclass(frozen=True)
class Marker:
    """What the hidden marker of an issue body or comment says."""

    fingerprint: Optional[str]
    entry: str


def marker(entry: str, fingerprint: Optional[str] = None) -> str:
    """The hidden marker of a body written by the outbox entry ``entry``."""
    named = f" fingerprint={fingerprint}" if fingerprint else ""
    return f"<!-- flawless{named} entry={entry} -->"


def find_marker(body: Optional[str]) -> Optional[Marker]:
    """The marker in an issue body or comment, if flawless wrote it."""
    found = _MARKER.search(body or "")
    return Marker(found.group(1), found.group(2)) if found else None


def fence(text: str, language: str = "") -> str:
    """``text`` as a fenced code block, fenced longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"


def code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def issue_title(facts: AlertFacts) -> str:
    """``TYPE: MESSAGE in FUNCTION (WHERE)``, plain text (titles are not Markdown)."""
    message = " ".join(facts.message.split())
    head = f"{facts.short_type}: {cut(message, 120)}" if message else facts.short_type
    return cut(f"{head} in {facts.function_name} ({facts.where})", TITLE_CHARS)


def _traceback(facts: AlertFacts) -> str:
    lines = []
    frames = facts.frames[-FRAMES_SHOWN:]
    if len(facts.frames) > len(frames):
        lines.append(f"  ... {len(facts.frames) - len(frames)} outer frames left out")
    for frame in frames:
        mark = ">>" if frame.blamed else "  "
        lines.append(f'{mark} File "{frame.filename}", line {frame.line_number}, '
                     f"in {frame.function_name}")
        if frame.text:
            lines.append(f"       {cut(frame.text, FRAME_TEXT_CHARS)}")
    lines.append(f"{facts.exception_type}: {cut(facts.message, MESSAGE_CHARS)}")
    return "\n".join(lines)


def _suspect(facts: AlertFacts) -> str:
    commit = facts.commit
    if commit is None:
        return "No line of the repository could be blamed."
    return (f"Suspect commit {code(commit.sha[:12])} by {code(commit.author_name)} "
            f"({utc_time(commit.committed_at)}): {code(cut(commit.summary, 200))}")


def issue_body(facts: AlertFacts, entry: str) -> str:
    """The body of a new issue about one error."""
    return "\n\n".join([
        f"{code(facts.exception_type)} in {code(facts.function_name)} at "
        f"{code(facts.where)}",
        fence(cut(facts.message, MESSAGE_CHARS) or "(no message)"),
        _suspect(facts),
        f"**Occurrences:** {facts.count} · **first seen** {utc_time(facts.first_seen)} · "
        f"**last seen** {utc_time(facts.last_seen)} · **host** {code(facts.hostname)}",
        "<details><summary>Traceback</summary>\n\n" + fence(_traceback(facts), "text")
        + "\n\n</details>",
        f"[View this error on flawless]({facts.url})",
        marker(entry, facts.fingerprint),
    ])


def alert_comment(facts: AlertFacts, entry: str) -> str:
    """A comment for an alert about an error whose issue exists already."""
    return "\n\n".join([
        f"Alerted again at {counted(facts.count, 'occurrence')} "
        f"(last seen {utc_time(facts.last_seen)}, "
        f"host {code(facts.hostname)}).",
        fence(cut(facts.message, MESSAGE_CHARS) or "(no message)"),
        f"[View this error on flawless]({facts.url})",
        marker(entry)])


def recurrence_comment(facts: AlertFacts, since_count: int, since: Optional[float],
                       entry: str) -> str:
    """A comment about an error that keeps happening."""
    when = f" since {utc_time(since)}" if since is not None else ""
    return "\n\n".join([
        f"Happened {since_count} more time{'s' if since_count != 1 else ''}{when} "
        f"({facts.count} in all; last seen {utc_time(facts.last_seen)} on "
        f"{code(facts.hostname)}).",
        f"[View this error on flawless]({facts.url})",
        marker(entry)])


REOPENED_NOTE = "This error came back after its issue was closed: reopened by flawless."


def digest_body(held: Sequence[Held], window: str, dashboard_url: str, entry: str) -> str:
    """The body of an issue listing the alerts held back by the hourly bound."""
    lines = held_lines(held, DIGEST_ITEMS, lambda item: f"- {code(item.title)}"
                       + (f": {occurrences(item)}" if item.count is not None else "")
                       + (f" ([view]({item.url}))" if item.url else ""),
                       lambda left: f"- ...and {left} more: see the dashboard")
    return "\n\n".join([
        f"flawless held back {counted(len(held), 'alert')} {window}: the hourly bound for this "
        f"repository was reached. Each error gets its own issue when it comes back.",
        "\n".join(lines), f"[Open the dashboard]({dashboard_url})", marker(entry)])


def digest_title(count: int, window: str) -> str:
    """The title of a digest issue."""
    return cut(f"flawless: {counted(count, 'alert')} held back {window}", TITLE_CHARS)


@dataclass(frozen=True)
class IssueDocument:
    """What an outbox entry of an issue channel asks the tracker for.

    ``fingerprint`` names the error (None for a digest, which is always a new issue).
    Without a known issue, one is opened with ``title`` and ``body``; with one, ``comment``
    is added to it (and a closed issue reopened first).
    """

    fingerprint: Optional[str]
    title: str
    body: str
    comment: str

    def encode(self) -> bytes:
        """The stored form."""
        return json.dumps(self.__dict__, ensure_ascii=False).encode("utf-8")

    @staticmethod
    def decode(data: bytes) -> "IssueDocument":
        """Read back a stored document."""
        values: dict[str, Any] = json.loads(data)
        return IssueDocument(values.get("fingerprint"), str(values["title"]),
                             str(values["body"]), str(values["comment"]))
