"""The email channel: SMTP (STARTTLS, login), or a local mbox file when no SMTP server is set.

Delivery blocks (smtplib, file locks), so it runs in the ``delivery`` thread pool.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import mailbox
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Callable, Optional, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from flawless.server.delivery.channels import DeliveryError
from flawless.server.storage.records import OutboxMail
from flawless.server.threads import Runner

log = Logger()


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server."""

    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)   # never in logs or tracebacks
    use_tls: bool = False                           # STARTTLS
    timeout: float = 30.0


def _envelope_sender(data: bytes) -> str:
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    return email.utils.parseaddr(str(headers.get("From", "")))[1]


def send_smtp(data: bytes, recipients: Sequence[str], settings: SmtpSettings) -> None:
    """Send one rendered mail over SMTP (STARTTLS when ``use_tls``, login when a user is set).

    Raises :class:`DeliveryError` when no recipient accepted it.
    """
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.use_tls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password)
            refused = smtp.sendmail(_envelope_sender(data), list(recipients), data)
    except (smtplib.SMTPException, OSError) as error:
        reason = f"{type(error).__name__}: {error}"
        if settings.password:
            reason = reason.replace(settings.password, "***")
        # "from None": the original exception is left out so nothing can carry the password.
        raise DeliveryError(f"SMTP delivery via {settings.host}:{settings.port} "
                            f"failed: {reason}") from None
    for address, (code, answer) in refused.items():
        log.warn("SMTP server refused {address}: {code} {answer}", address=address, code=code,
                 answer=answer.decode("utf-8", "replace"))


# mbox locks (fcntl and dot files) exclude other processes; this excludes our own threads.
_mailbox_lock = threading.Lock()


def append_to_mailbox(data: bytes, recipients: Sequence[str], path: str) -> None:
    """Append one rendered mail to the mbox file at ``path`` (created when missing).

    ``recipients`` are in the message's own headers already; the parameter keeps the
    signature of every deliverer. Raises :class:`DeliveryError` when the file cannot be written.
    """
    try:
        with _mailbox_lock:
            box = mailbox.mbox(path, create=True)
            box.lock()
            try:
                # mbox files use the local line end; the stored form uses CRLF.
                box.add(data.replace(b"\r\n", b"\n"))
                box.flush()
            finally:
                box.unlock()
                box.close()
    except (OSError, mailbox.Error) as error:
        raise DeliveryError(f"cannot append to mailbox {path}: {error}") from error


class EmailChannel:
    """Delivers rendered mail from the outbox through SMTP, or into the local mailbox."""

    name = "email"
    looks_before_repeating = False

    def __init__(self, smtp: Optional[SmtpSettings], mailbox_path: str, pool: Runner):
        self._pool = pool
        self._send: Callable[[bytes, Sequence[str]], None] = (
            functools.partial(send_smtp, settings=smtp) if smtp is not None
            else functools.partial(append_to_mailbox, path=mailbox_path))

    def deliver(self, entry: OutboxMail) -> defer.Deferred:
        """Send one mail (in the delivery pool)."""
        return self._pool.run(self._send, entry.message, entry.recipients)
