"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from email.message import EmailMessage
from typing import Callable, Optional

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.held: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()
        self.refuse = False
        self.hold_next = False

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        if self.refuse:
            return "451 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if self.hold_next:  # read, never answered: the sender cannot know it arrived
            self.hold_next = False
            with self.lock:
                self.held.append((list(envelope.rcpt_tos), message))
            await asyncio.sleep(3600)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpSink:
    """Start with ``SmtpSink().start()``; ``messages`` holds (recipients, message) pairs."""

    def __init__(self, port: Optional[int] = None) -> None:
        self._keeper = _Keeper()
        self.port = port or free_port()
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=self.port)

    def start(self) -> "SmtpSink":
        """Start listening on its loopback port (a free one unless one was given)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    @property
    def hostport(self) -> str:
        """host:port for the smtp_host option."""
        return f"127.0.0.1:{self.port}"

    def refuse(self, refusing: bool) -> None:
        """Answer every message with a temporary failure while ``refusing`` is True."""
        self._keeper.refuse = refusing

    def hold_next(self) -> None:
        """Take in the next message but never answer it (kept in :attr:`held`, not in
        :attr:`messages`): its sender waits until it gives up or dies."""
        self._keeper.hold_next = True

    @property
    def held(self) -> list[tuple[list[str], EmailMessage]]:
        """The messages taken in and never answered."""
        with self._keeper.lock:
            return list(self._keeper.held)

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        """Every accepted (recipients, message), in order."""
        with self._keeper.lock:
            return list(self._keeper.messages)

    def wait_for(self, count: int, timeout: float = 20.0,
                 where: Optional[Callable[[list[str], EmailMessage], bool]] = None
                 ) -> list[tuple[list[str], EmailMessage]]:
        """Wait until ``count`` matching messages arrived; return them (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [item for item in self.messages if where is None or where(*item)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
