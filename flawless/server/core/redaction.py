"""PURE: mask secrets in text shown to people (logs, health, pages, errors)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Iterable, Mapping

MASK = "***"
MIN_SECRET_CHARS = 8  # a shorter user name (``git``) is also an ordinary word
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret replaced by ``***``, longest first (so none is left half
    masked), and the credentials of every URL in it masked too."""
    for secret in sorted({secret for secret in secrets if secret}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_USERINFO.sub(rf"\1{MASK}@", text)


def redact_data(value: Any, secrets: Iterable[str] = ()) -> Any:
    """JSON data with :func:`redact` applied to every string in it."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {key: redact_data(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item, secrets) for item in value]
    return value


def url_secrets(url: str, minimum: int = MIN_SECRET_CHARS) -> list[str]:
    """The credentials a URL carries (``user:password``, the password, and their
    percent-decoded forms) of at least ``minimum`` characters, to mask wherever they appear."""
    parts = urllib.parse.urlsplit(url or "")
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    found = [userinfo, parts.password or ""]
    found += [urllib.parse.unquote(secret) for secret in found]
    return [secret for secret in found if len(secret) >= max(1, minimum)]


def secret_url_parts(url: str, minimum: int = 6) -> list[str]:
    """What of a URL that is itself a secret (a Slack or webhook endpoint) must never be
    shown: the whole, its path, its query and each query value of at least ``minimum``
    characters, and its credentials."""
    parts = urllib.parse.urlsplit(url or "")
    values = [value for _, value in urllib.parse.parse_qsl(parts.query)]
    found = [url, parts.path if len(parts.path) > 1 else "", parts.query, *values]
    return [secret for secret in found if len(secret) >= minimum] + url_secrets(url, minimum)
