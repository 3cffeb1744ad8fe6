"""PURE: small text rules shared by routing, alerting, rules and git."""

from __future__ import annotations

import re

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TOP_LEVEL = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
MAX_ADDRESS_CHARS = 254


def fold_whitespace(text: str) -> str:
    """``text`` with every run of whitespace turned into one space and both ends stripped."""
    return " ".join(text.split())


def is_valid_address(text: str) -> bool:
    """Whether ``text`` is a plain deliverable address ``local@domain.tld`` (no display name,
    no spaces or line breaks, a dotted domain; long new top-level domains are fine)."""
    if len(text) > MAX_ADDRESS_CHARS or text.count("@") != 1:
        return False
    local, domain = text.split("@")
    labels = domain.split(".")
    return (len(local) <= 64 and _LOCAL_PART.fullmatch(local) is not None
            and len(labels) >= 2
            and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
            and _TOP_LEVEL.fullmatch(labels[-1]) is not None)


def plural(count: int) -> str:
    """The ending of a regular noun counted ``count`` times: "" for one, else "s"."""
    return "" if count == 1 else "s"


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, in the plural unless the count is one: "1 alert", "2 alerts"."""
    return f"{count} {noun}{plural(count)}"
