"""Privacy: what must never leave the client.

Three kinds of scrubbing, all on by default:

* names: a local variable, attribute or dict key whose name matches one of
  :data:`DEFAULT_KEY_PATTERNS` (anywhere in the name, case-insensitive) has its value masked;
  :meth:`Scrubber.add_key_patterns` adds patterns;
* values: text that looks like a card number (Luhn-checked), a bearer or basic token, a JWT,
  a PEM private key, a ``user:password@`` URL, an email address, the value of a URL's query
  parameter (``?q=...&page=...``: what users type, as in a Django request's repr) or
  ``name=value`` with a sensitive name is masked wherever it appears (locals, exception
  message, additional info, context, tags, the request, chained exceptions); each kind
  (:data:`VALUE_KINDS`) can be turned off with :meth:`Scrubber.remove`;
* paths: home directories, the virtualenv prefix and Jupyter kernel temp directories are
  replaced so no user name leaves the machine, while the tail the server maps to the
  repository (``shop/cart.py``, ``site-packages/requests/adapters.py``) is kept.

The mask (``<scrubbed>`` by default) is the caller's choice.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from typing import Iterable, Mapping, Optional

from flawless.report import ChainedException, Frame, NotebookCell, Report, RequestInfo

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
# The value of each parameter of a URL's query (or of a form body after its first one).
_QUERY_VALUE = re.compile(r"([?&][\w.\-\[\]%+]+=)[^&#\s'\"<>]+")
# An address, also URL-encoded (ann%40example.com) as it appears in paths and query strings.
_EMAIL = re.compile(r"(?<![\w.+%-])[\w.+%-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Home directories in free text and in reprs (where backslashes appear doubled).
_HOME = re.compile(r"(?:/home/|/Users/|[A-Za-z]:(?:\\+)Users(?:\\+))[^/\\\s'\"]+")
_IPYKERNEL = re.compile(r"^.*[/\\]ipykernel_\d+(?=[/\\])")
_PACKAGES = re.compile(r"^.*?[/\\]((?:site|dist)-packages[/\\].*)$")

# The kinds of values masked wherever they appear; each can be removed.
VALUE_KINDS = ("private_keys", "tokens", "jwts", "url_credentials", "query_values",
               "assignments", "card_numbers", "emails", "home_directories")


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match, mask: str) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return mask if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


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
        self.kinds = frozenset(VALUE_KINDS)
        self._compile(tuple(key_patterns))

    def _compile(self, patterns: tuple[str, ...]) -> None:
        # No pattern left must match no name (an empty alternation would match every one).
        alternatives = "|".join(f"(?:{pattern})" for pattern in patterns) or "(?!)"
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

    def remove(self, *names: str) -> None:
        """Stop masking: each name is a key pattern in use (``"session"``) or a kind of
        value (one of :data:`VALUE_KINDS`, ``"emails"``). Raises ValueError naming any
        that is neither, and then changes nothing."""
        unknown = [name for name in names if name not in self._patterns
                   and name not in VALUE_KINDS]
        if unknown:
            raise ValueError(f"not a scrubbing pattern in use nor one of {VALUE_KINDS}: "
                             + ", ".join(map(repr, unknown)))
        kept = tuple(pattern for pattern in self._patterns if pattern not in names)
        if kept != self._patterns:
            self._compile(kept)
        self.kinds = self.kinds - set(names)

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

    def scrub_text(self, text: str, secrets: Iterable[str] = (), assignments: bool = True,
                   mask: str = MASK, code: bool = False) -> str:
        """Return ``text`` with secret-looking values, known ``secrets`` and home paths masked.

        ``assignments`` also masks the value in ``name=value`` / ``name: value`` when the
        name is sensitive; it is off for source lines, which would lose their meaning.
        ``code`` (a source line, which is in the repository already) keeps email addresses.
        """
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, mask)
        # Each pattern runs only where the text has what it needs to match (a cheap substring
        # test), so the common value, which holds no secret, costs a few scans, not six regexes.
        kinds = self.kinds
        lowered = text.lower()
        if "private key" in lowered and "private_keys" in kinds:
            text = _PEM.sub(mask, text)
        if ("bearer" in lowered or "basic" in lowered or "token" in lowered) \
                and "tokens" in kinds:
            text = _TOKEN.sub(lambda m: m.group(1) + m.group(2) + mask, text)
        if "eyJ" in text and "jwts" in kinds:
            text = _JWT.sub(mask, text)
        if "://" in text and "@" in text and "url_credentials" in kinds:
            text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + mask + "@", text)
        if "=" in text and ("?" in text or "&" in text) and not code \
                and "query_values" in kinds:
            text = _QUERY_VALUE.sub(lambda m: m.group(1) + mask, text)
        if ("@" in text or "%40" in text) and not code and "emails" in kinds:
            text = _EMAIL.sub(mask, text)
        if assignments and ("=" in text or ":" in text) and "assignments" in kinds \
                and self._may_assign_secret(text):
            text = self._assignment.sub(lambda m: m.group(1) + mask, text)
        if _DIGIT_RUN.search(text) and "card_numbers" in kinds:
            text = _CARD.sub(lambda m: _mask_card(m, mask), text)
        return self._replace_home(text)

    def _may_assign_secret(self, text: str) -> bool:
        """Whether ``name=value`` masking could change ``text``: some name right before a
        ``=`` or ``:`` is sensitive. When every pattern matches word characters only, the
        names are looked up (cached) instead of searching the text for every pattern."""
        if not self._word_patterns:
            return self._key.search(text) is not None
        return any(self.is_sensitive_name(name) for name in _NAME_BEFORE_SEPARATOR.findall(text))

    def _replace_home(self, text: str) -> str:
        if "home_directories" not in self.kinds:
            return text
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

    def scrub_report(self, report: Report, secrets: Iterable[str] = (),
                     mask: str = MASK) -> Report:
        """Return ``report`` with every free-text field, local and path scrubbed.

        Source lines keep their code (the server matches rules against it): only secret
        values are masked in them, not every ``name = ...``.
        """
        known = sorted(set(secrets), key=len, reverse=True)

        def text(value: Optional[str]) -> Optional[str]:
            return self.scrub_text(value, known, mask=mask) if value else value

        def strings(values: Optional[Mapping[str, str]]) -> Optional[dict[str, str]]:
            if values is None:
                return None
            return {name: mask if self.is_sensitive_name(name) else text(value)
                    for name, value in values.items()}

        def frames(traceback: Iterable[Frame]) -> tuple[Frame, ...]:
            # replace(): a frame keeps every field scrubbing leaves alone (its column, ...)
            return tuple(
                replace(frame, filename=self.shorten_path(frame.filename),
                        text=self.scrub_text(frame.text, known, assignments=False, mask=mask,
                                             code=True),
                        frame_locals=strings(frame.frame_locals),
                        cell=self._scrub_cell(frame.cell))
                for frame in traceback)

        context = None
        if report.context is not None:
            context = {key: text(value) if isinstance(value, str) else value
                       for key, value in report.context.items()}
        request = report.request
        if request is not None:
            request = RequestInfo(request.method, text(request.url), request.route,
                                  strings(request.headers))
        return replace(
            report,
            exception_message=text(report.exception_message),
            traceback=frames(report.traceback),
            additional_info=text(report.additional_info),
            context=context,
            tags=strings(report.tags),
            request=request,
            user_id=text(report.user_id),
            chained=tuple(ChainedException(item.exception_type, text(item.exception_message),
                                           frames(item.traceback))
                          for item in report.chained),
        )
