"""Privacy: what must never leave the client.

Three kinds of scrubbing, all on by default:

* names: a local variable, attribute or dict key whose name matches one of
  :data:`DEFAULT_KEY_PATTERNS` (anywhere in the name, case-insensitive) has its value masked;
  :meth:`Scrubber.add_key_patterns` adds patterns;
* values: text that looks like a card number (Luhn-checked), a bearer or basic token, a JWT,
  a PEM private key, a ``user:password@`` URL or ``name=value`` with a sensitive name is
  masked wherever it appears (locals, exception message, additional info, context);
* paths: home directories, the virtualenv prefix and Jupyter kernel temp directories are
  replaced so no user name leaves the machine, while the tail the server maps to the
  repository (``shop/cart.py``, ``site-packages/requests/adapters.py``) is kept.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from typing import Iterable, Mapping, Optional

from flawless.report import NotebookCell, Report

MASK = "<scrubbed>"
_MAX_REMEMBERED_NAMES = 4096

DEFAULT_KEY_PATTERNS: list[str] = [
    "password", "passwd", "pwd", "passphrase", "secret", "token", "api_?key", "api-key",
    "apikey", "access_?key", "auth", "credential", "private_?key", "session", "cookie", "csrf",
    "xsrf", "card", "cvv", "cvc", "ssn", "iban", "signature",
]

_CARD = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")
# A name just before "=" or ":", as the assignment pattern sees it.
_NAME_BEFORE_SEPARATOR = re.compile(r"([\w.\-]+)['\"]?\s*[=:]")
# Patterns that can only match letters, digits, "_" and "-" (each of the last two optional).
_WORD_PATTERN = re.compile(r"(?:[A-Za-z0-9_\-]|[_\-]\?)*")
_DIGIT_RUN = re.compile(r"\d[ -]?\d[ -]?\d[ -]?\d")  # every card number has one
_TOKEN = re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9\-._~+/]{6,}=*", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?"
                  r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.DOTALL)
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/@'\"]+@")
# Home directories in free text and in reprs (where backslashes appear doubled).
_HOME = re.compile(r"(?:/home/|/Users/|[A-Za-z]:(?:\\+)Users(?:\\+))[^/\\\s'\"]+")
_IPYKERNEL = re.compile(r"^.*[/\\]ipykernel_\d+(?=[/\\])")
_PACKAGES = re.compile(r"^.*?[/\\]((?:site|dist)-packages[/\\].*)$")


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return MASK if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def _local_home() -> Optional[str]:
    home = os.path.expanduser("~")
    return home if home not in ("~", "/", "") else None


def _virtualenv_prefix() -> Optional[str]:
    return sys.prefix if sys.prefix != sys.base_prefix else None


class Scrubber:
    """Masks secrets and personal paths in captured reports.

    ``is_sensitive_name`` runs on the application's thread while locals are captured (so a
    secret is never even repr'd); everything else runs on the sender thread.
    """

    def __init__(self, key_patterns: Iterable[str] = DEFAULT_KEY_PATTERNS,
                 home: Optional[str] = None, virtualenv: Optional[str] = None) -> None:
        self._patterns: tuple[str, ...] = ()
        self._home = home if home is not None else _local_home()
        self._virtualenv = virtualenv if virtualenv is not None else _virtualenv_prefix()
        self._compile(tuple(key_patterns))

    def _compile(self, patterns: tuple[str, ...]) -> None:
        alternatives = "|".join(f"(?:{pattern})" for pattern in patterns)
        self._key = re.compile(alternatives, re.IGNORECASE)
        self._assignment = re.compile(
            r"([\w.\-]*(?:" + alternatives + r")[\w.\-]*['\"]?\s*[=:]\s*['\"]?)([^\s'\",&;}]+)",
            re.IGNORECASE)
        self._names: dict[str, bool] = {}  # name -> sensitive, for these patterns
        self._word_patterns = all(_WORD_PATTERN.fullmatch(pattern) for pattern in patterns)
        # Assign last: readers on other threads see either the old or the new patterns.
        self._patterns = patterns

    def add_key_patterns(self, *patterns: str) -> None:
        """Also mask values whose name matches any of ``patterns`` (regular expressions)."""
        for pattern in patterns:
            re.compile(pattern)
        self._compile(self._patterns + tuple(patterns))

    def is_sensitive_name(self, name: object) -> bool:
        """True when a local, attribute or key of this name must have its value masked."""
        if not isinstance(name, str):
            return False
        known = self._names.get(name)
        if known is None:
            # Programs reuse a small vocabulary of names: remember the answers (bounded).
            if len(self._names) >= _MAX_REMEMBERED_NAMES:
                self._names = {}
            known = self._names[name] = self._key.search(name) is not None
        return known

    def scrub_text(self, text: str, secrets: Iterable[str] = (), assignments: bool = True) -> str:
        """Return ``text`` with secret-looking values, known ``secrets`` and home paths masked.

        ``assignments`` also masks the value in ``name=value`` / ``name: value`` when the
        name is sensitive; it is off for source lines, which would lose their meaning.
        """
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        # Each pattern runs only where the text has what it needs to match (a cheap substring
        # test), so the common value, which holds no secret, costs a few scans, not six regexes.
        lowered = text.lower()
        if "private key" in lowered:
            text = _PEM.sub(MASK, text)
        if "bearer" in lowered or "basic" in lowered or "token" in lowered:
            text = _TOKEN.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
        if "eyJ" in text:
            text = _JWT.sub(MASK, text)
        if "://" in text and "@" in text:
            text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
        if assignments and ("=" in text or ":" in text) and self._may_assign_secret(text):
            text = self._assignment.sub(lambda m: m.group(1) + MASK, text)
        if _DIGIT_RUN.search(text):
            text = _CARD.sub(_mask_card, text)
        return self._replace_home(text)

    def _may_assign_secret(self, text: str) -> bool:
        """Whether ``name=value`` masking could change ``text``: some name right before a
        ``=`` or ``:`` is sensitive. When every pattern matches word characters only, the
        names are looked up (cached) instead of searching the text for every pattern."""
        if not self._word_patterns:
            return self._key.search(text) is not None
        return any(self.is_sensitive_name(name) for name in _NAME_BEFORE_SEPARATOR.findall(text))

    def _replace_home(self, text: str) -> str:
        if self._home and self._home in text:
            text = text.replace(self._home, "~")
        if "/home/" in text or "Users" in text:
            text = _HOME.sub("~", text)
        return text

    def shorten_path(self, path: str) -> str:
        """Return ``path`` without the user's name but with the tail the server maps."""
        packages = _PACKAGES.match(path)
        if packages:
            return packages.group(1)
        kernel = _IPYKERNEL.match(path)
        if kernel:
            return "<ipykernel>" + path[kernel.end():]
        if self._virtualenv and path.startswith(self._virtualenv + os.sep):
            return "<virtualenv>" + path[len(self._virtualenv):]
        return self._replace_home(path)

    def _scrub_cell(self, cell: Optional[NotebookCell]) -> Optional[NotebookCell]:
        if cell is None or cell.notebook is None:
            return cell
        return replace(cell, notebook=self.shorten_path(cell.notebook))

    def scrub_report(self, report: Report, secrets: Iterable[str] = ()) -> Report:
        """Return ``report`` with every free-text field, local and path scrubbed.

        Source lines keep their code (the server matches rules against it): only secret
        values are masked in them, not every ``name = ...``.
        """
        known = sorted(set(secrets), key=len, reverse=True)

        def text(value: str) -> str:
            return self.scrub_text(value, known)

        def scrub_locals(frame_locals: Optional[Mapping[str, str]]) -> Optional[dict[str, str]]:
            if frame_locals is None:
                return None
            return {name: MASK if self.is_sensitive_name(name) else text(value)
                    for name, value in frame_locals.items()}

        frames = tuple(
            replace(frame, filename=self.shorten_path(frame.filename),
                    text=self.scrub_text(frame.text, known, assignments=False),
                    frame_locals=scrub_locals(frame.frame_locals),
                    cell=self._scrub_cell(frame.cell))
            for frame in report.traceback)
        context = None
        if report.context is not None:
            context = {key: text(value) if isinstance(value, str) else value
                       for key, value in report.context.items()}
        return replace(
            report,
            exception_message=text(report.exception_message),
            traceback=frames,
            additional_info=text(report.additional_info) if report.additional_info else
            report.additional_info,
            context=context,
        )
