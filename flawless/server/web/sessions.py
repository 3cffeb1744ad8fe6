"""Logins for the dashboard: passwords, sessions, CSRF tokens, and delays after failures.

Two passwords: the admin's (changes rule files) and, when set, the viewer's (reads pages and
the API; without it reading needs no login). Failed logins are counted per client address
(an IPv6 /64 counts as one): the first few cost nothing, then each further attempt from that
address waits twice as long as the one before, up to a quarter of an hour. Nobody else is
slowed down, so strangers guessing cannot lock the admin out.

Sessions live in memory: a restart logs everyone out, which is the safe direction. Every
decision takes the time from an injected clock so tests can move it.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

ADMIN, VIEWER = "admin", "viewer"
SESSION_COOKIE = "flawless_session"
LOGIN_COOKIE = "flawless_login"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 1000
FREE_FAILURES = 3              # failed logins from one address before any delay
FIRST_DELAY_SECONDS = 1.0      # then 1 s, 2 s, 4 s, ... before the next attempt
MAX_DELAY_SECONDS = 900.0
FORGET_FAILURES_SECONDS = 24 * 3600.0
MAX_TRACKED_ADDRESSES = 10000


@dataclass(frozen=True)
class Session:
    """One logged-in browser: its cookie value, its CSRF token, its role and expiry."""

    session_id: str
    csrf_token: str
    expires_at: float
    role: str = ADMIN


class TooManyAttempts(Exception):
    """Login refused without checking the password; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed logins; try again in {self.retry_after} s")


def tokens_match(expected: Optional[str], given: Optional[str]) -> bool:
    """Constant-time comparison of two tokens; a missing one never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def new_token() -> str:
    """A fresh unguessable token for cookies and forms."""
    return secrets.token_urlsafe(32)


@dataclass
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Failed logins per address: how long the next attempt from an address must wait."""

    def __init__(self, max_tracked: int = MAX_TRACKED_ADDRESSES):
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._max_tracked = max_tracked

    def wait(self, address: str, now: float) -> float:
        """Seconds before ``address`` may try again (0: now)."""
        failures = self._failures.get(address)
        if failures is None:
            return 0.0
        if now - failures.last >= FORGET_FAILURES_SECONDS:
            del self._failures[address]
            return 0.0
        if failures.count < FREE_FAILURES:
            return 0.0
        delay = min(MAX_DELAY_SECONDS,
                    FIRST_DELAY_SECONDS * 2 ** (failures.count - FREE_FAILURES))
        return max(0.0, failures.last + delay - now)

    def failed(self, address: str, now: float) -> None:
        """Count a failed login from ``address``."""
        failures = self._failures.pop(address, None) or _Failures(0, now)
        failures.count, failures.last = failures.count + 1, now
        self._failures[address] = failures
        while len(self._failures) > self._max_tracked:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """A right password from ``address``: its failures are forgotten."""
        self._failures.pop(address, None)


class Gate:
    """Who may read and who may change: the passwords, sessions and the login throttle."""

    def __init__(self, admin_password: str, viewer_password: str,
                 clock: Callable[[], float]):
        self._passwords = tuple((role, password) for role, password in (
            (ADMIN, admin_password), (VIEWER, viewer_password)) if password)
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self.throttle = LoginThrottle()
        self.admin_enabled = bool(admin_password)
        self.viewer_required = bool(viewer_password)

    @property
    def enabled(self) -> bool:
        """Whether anybody can log in (a password is configured)."""
        return bool(self._passwords)

    def role_of(self, address: str, password: str) -> Optional[str]:
        """The role ``password`` grants (admin before viewer), or None when it grants none.

        Raises TooManyAttempts while ``address`` must wait after failed attempts; the
        password is then not even compared."""
        now = self._clock()
        wait = self.throttle.wait(address, now)
        if wait > 0:
            raise TooManyAttempts(wait)
        # Every password is compared, so the time taken tells nothing about which matched.
        matches = [role for role, expected in self._passwords if tokens_match(expected, password)]
        if not matches:
            self.throttle.failed(address, now)
            return None
        self.throttle.succeeded(address)
        return matches[0]

    def login(self, address: str, password: str) -> Optional[Session]:
        """A new session when ``password`` is right, None when wrong (see :meth:`role_of`)."""
        role = self.role_of(address, password) if self.enabled else None
        return None if role is None else self._open_session(self._clock(), role)

    def _open_session(self, now: float, role: str) -> Session:
        for session_id, session in list(self._sessions.items()):
            if session.expires_at <= now:
                del self._sessions[session_id]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.expires_at)
            del self._sessions[oldest.session_id]
        session = Session(new_token(), new_token(), now + SESSION_SECONDS, role)
        self._sessions[session.session_id] = session
        return session

    def session(self, session_id: Optional[str]) -> Optional[Session]:
        """The live session behind a cookie value, or None."""
        if not self.enabled or not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def logout(self, session_id: Optional[str]) -> None:
        """End a session (unknown ids are ignored)."""
        if session_id:
            self._sessions.pop(session_id, None)
