"""PURE: which channels an alert goes to, and what identifies an error to a channel.

``alert_channels`` (flawless.cfg) is the default; an entry of ``channels.yaml`` whose
``filepath`` covers the error's path replaces it (the most specific entry wins), so that a
path may narrow or widen where its alerts go. A channel that is not configured is left out
and the explanation says so.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from typing import AbstractSet, Optional, Sequence

from flawless.server.core.model import ChannelRule, ErrorKey

EMAIL, SLACK, WEBHOOK, GITHUB, GITLAB = "email", "slack", "webhook", "github", "gitlab"
CHANNEL_NAMES = (EMAIL, SLACK, WEBHOOK, GITHUB, GITLAB)
ISSUE_CHANNELS = (GITHUB, GITLAB)


@dataclass(frozen=True)
class ChannelChoice:
    """The channels an alert goes to and why."""

    channels: tuple[str, ...]
    explanation: tuple[str, ...]


def _covers(filepath: str, path: str) -> bool:
    return path == filepath or path.startswith(filepath + "/")


def choose_channels(path: str, rules: Sequence[ChannelRule], default: Sequence[str],
                    configured: AbstractSet[str]) -> ChannelChoice:
    """Where the alerts of an error at ``path`` go: the channels of the most specific rule
    covering ``path`` (a later rule wins a tie), else ``default``, less those not in
    ``configured``."""
    rule: Optional[ChannelRule] = None
    for candidate in rules:
        if _covers(candidate.filepath, path) and (
                rule is None or len(candidate.filepath) >= len(rule.filepath)):
            rule = candidate
    chosen = rule.channels if rule is not None else tuple(default)
    why = f"channels.yaml ({rule.source}) for {rule.filepath}" if rule is not None \
        else "alert_channels"
    kept = tuple(name for name in dict.fromkeys(chosen) if name in configured)
    explanation = [f"alerts go to {', '.join(kept) or 'no channel'} ({why})"]
    explanation += [f"{name} is not configured: left out"
                    for name in dict.fromkeys(chosen) if name not in configured]
    return ChannelChoice(kept, tuple(explanation))


def issue_update_due(last_update: Optional[float], now: float, interval: float) -> bool:
    """Whether an error's issue may get another comment: at most one per ``interval``."""
    return last_update is None or now - last_update >= interval


def error_fingerprint(key: ErrorKey) -> str:
    """A stable name of an error for the outside world (the hidden marker of its issue)."""
    text = "\0".join((key.filename, key.function_name, key.text))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def url_destination(url: str) -> str:
    """How a secret URL (a Slack or webhook endpoint) is named in the database, the pages
    and the logs: its host and a digest of the whole, never its path or credentials."""
    host = urllib.parse.urlsplit(url).hostname or "?"
    return f"{host}#{hashlib.sha256(url.encode('utf-8')).hexdigest()[:12]}"
