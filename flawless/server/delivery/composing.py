"""Outbox entries for what flawless sends: an alert on each of its channels, an update of an
error's issue, a notice, a digest of what the hourly bounds held back.

Each entry is rendered for its channel when it is queued (so a retry sends the same bytes)
and gets a message id that stays the same across retries: the ``Message-ID`` of a mail, the
``webhook-id`` of a webhook call, the marker of an issue or comment, shown in a Slack message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Callable, Optional, Sequence

from flawless.server.core.channels import EMAIL, GITHUB, GITLAB, SLACK, WEBHOOK
from flawless.server.core.text import counted
from flawless.server.delivery import issue_text, render, slack_message, webhook_event
from flawless.server.delivery.facts import (AlertFacts, Held, alert_facts, held_lines, occurrences,
                                            read_summary, summary)
from flawless.server.storage.records import HeldEntry, NewEntry

DIGEST_MAIL_ITEMS = 1000


def new_message_id() -> str:
    """A message id for a channel other than email."""
    return "msg_" + secrets.token_hex(12)


@dataclass(frozen=True)
class Destinations:
    """Where each configured channel other than email delivers, by destination name."""

    slack: str = ""
    webhooks: tuple[str, ...] = ()
    github: str = ""
    gitlab: str = ""

    def configured(self) -> frozenset[str]:
        """The channels an alert may go to."""
        return frozenset([EMAIL] + [name for name, on in (
            (SLACK, self.slack), (WEBHOOK, self.webhooks), (GITHUB, self.github),
            (GITLAB, self.gitlab)) if on])

    def of(self, channel: str) -> tuple[str, ...]:
        """The destinations of a channel other than email."""
        if channel == WEBHOOK:
            return self.webhooks
        one = {SLACK: self.slack, GITHUB: self.github, GITLAB: self.gitlab}.get(channel, "")
        return (one,) if one else ()


def digest_window(since: float) -> str:
    """Words for the time a digest covers."""
    return f"since {render.utc_time(since)}"


class Composer:
    """Renders entries for every configured channel."""

    def __init__(self, sender: str, destinations: Destinations, base_url: Callable[[], str],
                 new_id: Callable[[], str] = new_message_id):
        self.sender = sender
        self.destinations = destinations
        self.base_url = base_url
        self._new_id = new_id

    # -- alerts --

    def alert(self, alert: render.Alert, channels: Sequence[str], now: float,
              error_id: Optional[int]) -> list[NewEntry]:
        """The entries of one alert on each of ``channels``: a mail per recipient, one
        message per Slack or webhook destination, an issue (or a comment) per tracker."""
        facts = alert_facts(alert)
        note = summary(facts.title, facts.count, facts.url)
        entries: list[NewEntry] = []
        for channel in channels:
            if channel == EMAIL:
                entries += self._mail_entries(render.render_alert(alert, self.sender, now),
                                              note, error_id)
                continue
            for destination in self.destinations.of(channel):
                message_id = self._new_id()
                if channel == SLACK:
                    body = slack_message.encode(slack_message.alert_message(facts, message_id))
                elif channel == WEBHOOK:
                    body = webhook_event.encode(webhook_event.alert_event(facts, now))
                else:
                    body = issue_text.IssueDocument(
                        facts.fingerprint, issue_text.issue_title(facts),
                        issue_text.issue_body(facts, message_id),
                        issue_text.alert_comment(facts, message_id)).encode()
                entries.append(NewEntry(channel, destination, body, (), message_id, note,
                                        error_id))
        return entries

    def issue_update(self, alert: render.Alert, channel: str, since_count: int,
                     since: Optional[float], error_id: Optional[int]) -> list[NewEntry]:
        """The entries updating an error's issue in ``channel`` after it happened
        ``since_count`` more times since ``since`` (opening one if none is known)."""
        facts: AlertFacts = alert_facts(alert)
        entries = []
        for destination in self.destinations.of(channel):
            message_id = self._new_id()
            document = issue_text.IssueDocument(
                facts.fingerprint, issue_text.issue_title(facts),
                issue_text.issue_body(facts, message_id),
                issue_text.recurrence_comment(facts, since_count, since, message_id))
            entries.append(NewEntry(channel, destination, document.encode(), (), message_id,
                                    summary(f"{facts.title} (again)", since_count, facts.url),
                                    error_id))
        return entries

    # -- mail --

    def note(self, message: EmailMessage) -> list[NewEntry]:
        """The entries of a notice mail (a broken rule file, a dropped recipient)."""
        return self._mail_entries(message, summary(str(message["Subject"]), None, ""), None)

    def _mail_entries(self, message: EmailMessage, note: str,
                      error_id: Optional[int]) -> list[NewEntry]:
        data = render.message_bytes(message)
        message_id = str(message["Message-ID"])
        return [NewEntry(EMAIL, recipient, data, (recipient,), message_id, note, error_id)
                for recipient in render.message_recipients(message)]

    # -- digests --

    def digest(self, channel: str, destination: str, held: Sequence[HeldEntry],
               now: float) -> NewEntry:
        """The one entry that carries every entry ``held`` back for ``destination``."""
        items: list[Held] = [read_summary(entry.summary) for entry in held]
        since = min(entry.created_at for entry in held)
        window = digest_window(since)
        dashboard = self.base_url().rstrip("/") + "/"
        title = f"flawless: {counted(len(items), 'alert')} held back {window}"
        if channel == EMAIL:
            lines = ["The hourly bound on alerts to you was reached; these were held back "
                     "until the hour was over:", ""]
            lines += held_lines(items, DIGEST_MAIL_ITEMS, lambda item: f"* {item.title}"
                                + (f": {occurrences(item)}" if item.count is not None else "")
                                + (f"\n  {item.url}" if item.url else ""),
                                lambda left: f"...and {left} more: {dashboard}")
            message = render.render_note(title, lines, [destination], self.sender)
            return self._mail_entries(message, summary(title, None, dashboard), None)[0]
        message_id = self._new_id()
        if channel == SLACK:
            body = slack_message.encode(slack_message.digest_message(items, window, dashboard,
                                                                     message_id))
        elif channel == WEBHOOK:
            body = webhook_event.encode(webhook_event.digest_event(items, since, now))
        else:
            body = issue_text.IssueDocument(
                None, issue_text.digest_title(len(items), window),
                issue_text.digest_body(items, window, dashboard, message_id), "").encode()
        return NewEntry(channel, destination, body, (), message_id,
                        summary(title, None, dashboard), None)
