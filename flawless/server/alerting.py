"""PURE: should this occurrence alert, and whom."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Recipient:
    """One address that gets the alert, and the rule that put it there."""

    email: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """The outcome for one processed occurrence of an error."""

    alert: bool
    reason: str                                  # why it alerts or does not
    recipients: tuple[Recipient, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()   # (address, why it was dropped)
    email_header: Optional[str] = None
