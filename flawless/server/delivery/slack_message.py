"""The Slack message of an alert and of a digest: Block Kit JSON with a plain ``text``
fallback, within Slack's documented limits (a header of 150 characters, section text of
3,000, at most 10 fields of 2,000, a button label of 75 and URL of 3,000, 50 blocks).

Everything a report or a commit carries is escaped (``&``, ``<``, ``>``, so no ``<!channel>``
or link can be smuggled in) and shown in code spans, where no formatting applies.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from flawless.server.core.text import counted
from flawless.server.delivery.facts import AlertFacts, Held, cut, held_lines, occurrences
from flawless.server.delivery.render import utc_time

HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
BUTTON_URL_CHARS = 3000
MESSAGE_CHARS = 500
DIGEST_LINES = 40


def escape(text: str) -> str:
    """``text`` safe in Slack's mrkdwn: its three control characters as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """``text`` as an inline code span (a backtick inside it would end the span early)."""
    return "`" + escape(" ".join(text.split()).replace("`", "ˋ")) + "`"


def _code_block(text: str) -> str:
    return "```" + escape(text.replace("`", "ˋ")) + "```"


def _button(label: str, url: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": label},
            "url": url[:BUTTON_URL_CHARS]}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def alert_message(facts: AlertFacts, message_id: str) -> dict[str, Any]:
    """The Block Kit message of one alert."""
    commit = facts.commit
    suspect = (f"{code(commit.sha[:10])} by {escape(commit.author_name)}\n"
               f"{escape(cut(commit.summary, 200))}") if commit else "none (nothing to blame)"
    fields = [
        f"*Where*\n{code(facts.where)} in {code(facts.function_name)}",
        f"*Suspect commit*\n{suspect}",
        f"*Occurrences*\n{facts.count}",
        f"*First seen*\n{utc_time(facts.first_seen)}",
    ]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "emoji": False,
                                    "text": cut(f"{facts.short_type} in {facts.function_name}",
                                                HEADER_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(
            f"*{escape(facts.exception_type)}*\n"
            + _code_block(cut(facts.message or "(no message)", MESSAGE_CHARS)),
            SECTION_CHARS)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": cut(text, FIELD_CHARS)}
                                       for text in fields]},
        {"type": "actions", "elements": [_button("View traceback", facts.url)]},
        _context(escape(f"flawless · {facts.hostname} · {message_id}")),
    ]
    text = escape(cut(f"{facts.title}: {facts.message}", 300))
    return {"text": text, "blocks": blocks}


def digest_message(held: Sequence[Held], window: str, dashboard_url: str,
                   message_id: str) -> dict[str, Any]:
    """The Block Kit message listing the alerts held back in ``window`` (words)."""
    lines = held_lines(held, DIGEST_LINES, lambda item: f"• {escape(item.title)}"
                       + (f" ({occurrences(item)})" if item.count is not None else "")
                       + (f" <{escape(item.url)}|view>" if item.url else ""),
                       lambda left: f"…and {left} more: see the dashboard")
    sections, current = [], ""
    for line in lines:
        line = cut(line, SECTION_CHARS)
        if current and len(current) + 1 + len(line) > SECTION_CHARS:
            sections.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(current)
    title = f"{counted(len(held), 'alert')} held back {window}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": False,
                                    "text": cut(title, HEADER_CHARS)}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": text}}
               for text in sections]
    blocks.append({"type": "actions", "elements": [_button("Open the dashboard",
                                                           dashboard_url)]})
    blocks.append(_context(escape(f"flawless · hourly bound reached · {message_id}")))
    return {"text": escape(f"flawless: {title}"), "blocks": blocks}


def encode(message: dict[str, Any]) -> bytes:
    """The request body of a message."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
