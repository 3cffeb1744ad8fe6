"""Admin login for the dashboard: password check, sessions, CSRF tokens, login rate limit.

Sessions live in memory: a restart logs everyone out, which is the safe direction. Every
decision takes the time from an injected clock so tests can move it.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

SESSION_COOKIE = "flawless_session"
LOGIN_COOKIE = "flawless_login"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 1000
FAILURE_WINDOW_SECONDS = 300.0
MAX_FAILURES_PER_CLIENT = 5
# Bounds guessing from many addresses at once as well.
MAX_FAILURES_OVERALL = 50


@dataclass(frozen=True)
class Session:
    """One logged-in browser: its cookie value, its CSRF token and when it expires."""

    session_id: str
    csrf_token: str
    expires_at: float


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


class AdminGate:
    """Decides who may change state: the admin password, sessions and failed-login limits."""

    def __init__(self, password: str, clock: Callable[[], float]):
        self._password = password
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._all_failures: deque[float] = deque()

    @property
    def enabled(self) -> bool:
        """Whether an admin password is configured (without one, nothing may change)."""
        return bool(self._password)

    def login(self, client: str, password: str) -> Optional[Session]:
        """A new session when ``password`` is right, None when wrong.

        Raises TooManyAttempts while ``client`` (or everyone together) failed too often
        recently; the password is then not even compared.
        """
        if not self.check(client, password):
            return None
        return self._open_session(self._clock())

    def check(self, client: str, password: str) -> bool:
        """Whether ``password`` is the admin password (for a request that carries it, as
        the API's do); failures count towards the same limits as logins.

        Raises TooManyAttempts as :meth:`login` does.
        """
        if not self.enabled:
            return False
        now = self._clock()
        self._forget_old_failures(now)
        attempts = self._failures.get(client, deque())
        if len(attempts) >= MAX_FAILURES_PER_CLIENT:
            raise TooManyAttempts(attempts[0] + FAILURE_WINDOW_SECONDS - now)
        if len(self._all_failures) >= MAX_FAILURES_OVERALL:
            raise TooManyAttempts(self._all_failures[0] + FAILURE_WINDOW_SECONDS - now)
        if not tokens_match(self._password, password):
            self._failures.setdefault(client, deque()).append(now)
            self._all_failures.append(now)
            return False
        self._failures.pop(client, None)
        return True

    def _forget_old_failures(self, now: float) -> None:
        horizon = now - FAILURE_WINDOW_SECONDS
        while self._all_failures and self._all_failures[0] <= horizon:
            self._all_failures.popleft()
        for client in list(self._failures):
            attempts = self._failures[client]
            while attempts and attempts[0] <= horizon:
                attempts.popleft()
            if not attempts:
                del self._failures[client]

    def _open_session(self, now: float) -> Session:
        for session_id, session in list(self._sessions.items()):
            if session.expires_at <= now:
                del self._sessions[session_id]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.expires_at)
            del self._sessions[oldest.session_id]
        session = Session(new_token(), new_token(), now + SESSION_SECONDS)
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
