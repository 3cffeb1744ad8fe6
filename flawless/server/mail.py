"""Email: render alerts and notices from templates/, deliver them, retry from the outbox.

Rendering is pure (values in, ``EmailMessage`` out). Delivery speaks SMTP, or appends to a
local mbox file when no SMTP server is configured. :class:`OutboxSender` is the Twisted
shell that retries stored mail with exponential backoff until it is delivered.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import functools
import mailbox
import random
import smtplib
import ssl
import threading
import unicodedata
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import Any, Callable, Optional, Protocol, Sequence
from urllib.parse import urlencode

import jinja2
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from flawless.report import Report, trim
from flawless.server.alerting import Decision
from flawless.server.blame import Blame
from flawless.server.routing import Route, RoutedFrame
from flawless.server.store import OutboxMail as OutboxItem

log = Logger()

MAX_SUBJECT_CHARS = 200
MAX_HEADER_CHARS = 998
# Unicode categories that must never reach a header: controls (CR, LF, TAB...), format
# characters (bidi overrides that disguise text) and the line/paragraph separators.
_HEADER_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_BODY_KEPT_CONTROLS = frozenset("\n\t")


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """Everything an alert email shows about one error."""

    report: Report            # the latest occurrence
    route: Route
    blame: Optional[Blame]    # None when nothing in the repository could be blamed
    decision: Decision
    count: int                # occurrences so far
    first_seen: float         # seconds since epoch
    last_seen: float
    base_url: str             # dashboard base URL, no trailing slash
    error_id: Optional[int] = None


class Outbox(Protocol):
    """The store's side of the outbox; every method is synchronous and thread-safe."""

    def due_mail(self, now: float, limit: int) -> Sequence[OutboxItem]:
        """Undelivered mail whose next attempt is due, oldest first."""

    def mark_sent(self, mail_id: int, now: float) -> None:
        """Record a delivery so the mail is never sent again."""

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> None:
        """Record a failed attempt and when to try again."""


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server."""

    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)   # never in logs or tracebacks
    use_tls: bool = False                           # STARTTLS
    timeout: float = 30.0


class DeliveryError(Exception):
    """A mail could not be delivered; the message never contains the SMTP password."""


Deliverer = Callable[[bytes, tuple[str, ...]], None]


# -- text hygiene ----------------------------------------------------------------------------


def header_text(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    """``value`` fit for one header: control and separator characters become spaces,
    runs of whitespace fold to one, and the result is at most ``limit`` characters."""
    cleaned = "".join(" " if unicodedata.category(char) in _HEADER_UNSAFE else char
                      for char in value)
    return trim(" ".join(cleaned.split()), limit)


def body_text(value: str) -> str:
    """``value`` fit for a mail body: line breaks normalised, other control characters
    dropped (a stray CR or escape sequence must not garble the message or the terminal)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(char for char in value
                   if char in _BODY_KEPT_CONTROLS or unicodedata.category(char) != "Cc")


# -- templates -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    # The templates ship as the package flawless.templates, both in a wheel and in an
    # editable install of the checkout, so the package loader finds them in either.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("flawless.templates", "."),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _render(name: str, **values: Any) -> str:
    return _templates().get_template(name).render(**values)


# -- the alert view --------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameView:
    """One traceback line as the templates show it."""

    filename: str
    line_number: int
    function_name: str
    text: str
    frame_locals: tuple[tuple[str, str], ...]
    blamed: bool


@dataclass(frozen=True)
class BlameView:
    """The blamed commit as the templates show it."""

    short_sha: str
    summary: str
    author_name: str
    author_email: str
    date: str
    head_fallback: Optional[str]   # sentence saying the blame ran at HEAD, when it did


def _utc(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _frame_views(route: Route) -> tuple[FrameView, ...]:
    return tuple(
        FrameView(
            filename=body_text(frame.filename),
            line_number=frame.line_number,
            function_name=body_text(frame.function_name),
            text=body_text(frame.text.strip()),
            frame_locals=tuple((body_text(name), body_text(value))
                               for name, value in (frame.frame_locals or {}).items()),
            blamed=index == route.blamed_index,
        )
        for index, frame in enumerate(item.frame for item in route.frames))


def _blame_view(blame: Optional[Blame], report: Report) -> Optional[BlameView]:
    if blame is None:
        return None
    head_fallback = None
    if not blame.at_requested_revision:
        asked = f" ({body_text(report.revision)})" if report.revision else ""
        head_fallback = (f"The blame ran at HEAD ({blame.revision[:12]}) because the report's "
                         f"revision{asked} was unknown to the repository.")
    return BlameView(short_sha=blame.commit_sha[:12], summary=body_text(blame.commit_summary),
                     author_name=body_text(blame.author_name),
                     author_email=body_text(blame.author_email),
                     date=_utc(blame.commit_timestamp), head_fallback=head_fallback)


def _culprit(alert: Alert) -> RoutedFrame:
    """The blamed frame, or the innermost one when nothing could be blamed."""
    return alert.route.blamed or alert.route.frames[-1]


def alert_location(alert: Alert) -> tuple[str, int]:
    """(path, line) the alert is about: the blamed repository path, else the innermost frame's."""
    culprit = _culprit(alert)
    path = culprit.repo_path or culprit.rule_path or culprit.frame.filename
    return path, culprit.frame.line_number


def error_query(alert: Alert) -> str:
    """The urlencoded parameters naming this error on the dashboard's pages."""
    key = alert.route.key
    return urlencode({
        "filename": key.filename,
        "function_name": key.function_name,
        "line_number": _culprit(alert).frame.line_number,
        "text": key.text,
        "timestamp": int(alert.last_seen),
    })


def alert_subject(alert: Alert) -> str:
    """``Error on HOSTNAME in PATH``, safe for a header and bounded."""
    hostname = alert.report.hostname or "unknown host"
    return header_text(f"Error on {hostname} in {alert_location(alert)[0]}", MAX_SUBJECT_CHARS)


def _alert_values(alert: Alert) -> dict[str, Any]:
    report = alert.report
    known_error = alert.route.known_error
    email_header = alert.decision.email_header or (known_error.email_header
                                                   if known_error else None)
    query = error_query(alert)
    base_url = alert.base_url.rstrip("/")
    context = report.context or {}
    return {
        "email_header": body_text(email_header) if email_header else None,
        "exception_type": body_text(report.exception_type),
        "exception_message": body_text(report.exception_message),
        "hostname": body_text(report.hostname or "unknown host"),
        "frames": _frame_views(alert.route),
        "blame": _blame_view(alert.blame, report),
        "count": alert.count,
        "first_seen": _utc(alert.first_seen),
        "last_seen": _utc(alert.last_seen),
        "additional_info": body_text(report.additional_info) if report.additional_info else None,
        "context": tuple((body_text(name), body_text(str(value)))
                         for name, value in context.items()),
        "view_url": f"{base_url}/view_traceback?{query}",
        "known_error_url": f"{base_url}/add_known_error?{query}",
        "developer_url": (f"{base_url}/developer?{urlencode({'email': alert.blame.author_email})}"
                          if alert.blame else None),
        "recipients": tuple((body_text(recipient.email), body_text(recipient.reason))
                            for recipient in alert.decision.recipients),
        "explanation": tuple(body_text(line) for line in alert.route.explanation),
    }


# -- messages --------------------------------------------------------------------------------


def _message_id_domain(sender: str) -> str:
    address = email.utils.parseaddr(header_text(sender))[1]
    domain = address.rpartition("@")[2]
    # make_msgid would otherwise ask the resolver for this host's name on every message.
    return domain if "@" in address and domain else "localhost"


def _new_message(subject: str, recipients: Sequence[str], sender: str,
                 now: Optional[float]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = header_text(subject, MAX_SUBJECT_CHARS)
    message["From"] = header_text(sender)
    message["To"] = ", ".join(header_text(address) for address in recipients)
    message["Date"] = email.utils.formatdate(now, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid("flawless", _message_id_domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    return message


def render_alert(alert: Alert, sender: str, now: Optional[float] = None) -> EmailMessage:
    """The alert email: plain text and HTML alternatives, addressed to the decision's
    recipients. ``now`` (seconds since epoch) sets the Date header; default: the clock."""
    message = _new_message(alert_subject(alert),
                           [recipient.email for recipient in alert.decision.recipients],
                           sender, now)
    values = _alert_values(alert)
    message.set_content(_render("email_alert.txt", **values))
    message.add_alternative(_render("email_alert.html", **values), subtype="html")
    return message


def render_note(subject: str, lines: Sequence[str], recipients: Sequence[str],
                sender: str) -> EmailMessage:
    """A short plain-text notice (a broken rule file, a dropped recipient...)."""
    message = _new_message(subject, recipients, sender, None)
    message.set_content(_render("email_note.txt", subject=body_text(subject),
                                lines=[body_text(line) for line in lines]))
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """The wire form of ``message`` (CRLF line ends), as the outbox stores it."""
    return message.as_bytes(policy=email.policy.SMTP)


def message_recipients(message: EmailMessage) -> tuple[str, ...]:
    """The bare addresses in ``message``'s To and Cc headers."""
    fields = [str(value) for name in ("To", "Cc") for value in message.get_all(name, [])]
    return tuple(address for _, address in email.utils.getaddresses(fields) if address)


# -- delivery --------------------------------------------------------------------------------


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


def deliver_smtp(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send ``message`` over SMTP to its To and Cc addresses; raises :class:`DeliveryError`."""
    send_smtp(message_bytes(message), message_recipients(message), settings)


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


def deliver_mailbox(message: EmailMessage, mailbox_path: str) -> None:
    """Append ``message`` to the mbox file at ``mailbox_path``."""
    append_to_mailbox(message_bytes(message), message_recipients(message), mailbox_path)


def make_deliverer(smtp: Optional[SmtpSettings], mailbox_path: str) -> Deliverer:
    """The deliverer for the outbox: SMTP when configured, else the local mailbox."""
    if smtp is not None:
        return functools.partial(send_smtp, settings=smtp)
    return functools.partial(append_to_mailbox, path=mailbox_path)


# -- retrying from the outbox ----------------------------------------------------------------


def retry_delay(attempts: int, first: float, maximum: float, unit_random: float) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from ``first``, capped at
    ``maximum``, then scaled into its upper half by ``unit_random`` (in [0, 1)) so that
    many failed mails do not all retry at the same moment."""
    delay = min(maximum, first * 2.0 ** min(attempts - 1, 64))
    return delay * (0.5 + unit_random / 2.0)


class OutboxSender:
    """Delivers due outbox mail one at a time in a dedicated thread, retrying failures.

    Each mail is marked sent right after its delivery; a failed one is marked with its
    next attempt time, so a restart resumes where this one stopped. Call :meth:`wake`
    (in the reactor thread) after queueing mail to deliver it at once.
    """

    def __init__(self, outbox: Outbox, deliver: Deliverer, reactor: Any = None,
                 poll_interval: float = 1.0, max_backoff: float = 3600.0,
                 first_retry: float = 2.0, batch_size: int = 20,
                 unit_random: Callable[[], float] = random.random) -> None:
        if reactor is None:
            # Imported here: importing this module must not install the default reactor.
            from twisted.internet import reactor
        self._outbox = outbox
        self._deliver = deliver
        self._reactor = reactor
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._first_retry = first_retry
        self._batch_size = batch_size
        self._unit_random = unit_random
        self._pool = ThreadPool(minthreads=0, maxthreads=1, name="flawless-mail")
        self._running = False
        self._cycle: Optional[defer.Deferred] = None
        self._again = False
        self._timer: Any = None
        self._idle_waiters: list[defer.Deferred] = []
        # Delivered but not yet recorded as such (the store failed): mark, never resend.
        self._unrecorded: set[int] = set()
        self.delivered = 0
        self.failed_attempts = 0

    def start(self) -> None:
        """Start the thread and deliver whatever is due."""
        if self._running:
            return
        self._running = True
        self._pool.start()
        self.wake()

    def stop(self) -> defer.Deferred:
        """Stop polling; the Deferred fires once the mail in flight (if any) is settled."""
        self._running = False
        self._cancel_timer()
        idle: defer.Deferred = defer.succeed(None)
        if self._cycle is not None:
            idle = defer.Deferred()
            self._idle_waiters.append(idle)
        return idle.addCallback(lambda _: self._stop_pool())

    def _stop_pool(self) -> None:
        if not self._pool.joined:  # a second stop() finds it stopped already
            self._pool.stop()

    def wake(self) -> None:
        """Look for due mail now rather than at the next poll."""
        if not self._running:
            return
        if self._cycle is not None:
            self._again = True
            return
        self._cancel_timer()
        self._cycle = defer.ensureDeferred(self._drain())
        self._cycle.addBoth(self._cycle_done)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _cycle_done(self, result: Any) -> None:
        self._cycle = None
        if isinstance(result, Failure):
            log.failure("outbox delivery interrupted; retrying at the next poll", result)
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if not self._running:
            return
        if self._again:
            self._again = False
            self._reactor.callLater(0, self.wake)
        else:
            self._timer = self._reactor.callLater(self._poll_interval, self.wake)

    def _in_thread(self, function: Callable[..., Any], *args: Any) -> defer.Deferred:
        return threads.deferToThreadPool(self._reactor, self._pool, function, *args)

    async def _drain(self) -> None:
        while self._running:
            items = await self._in_thread(self._outbox.due_mail, self._reactor.seconds(),
                                          self._batch_size)
            for item in items:
                if not self._running:
                    return
                await self._send(item)
            if len(items) < self._batch_size:
                return

    async def _send(self, item: OutboxItem) -> None:
        if item.mail_id not in self._unrecorded:
            try:
                await self._in_thread(self._deliver, item.message, item.recipients)
            except Exception as error:  # noqa: BLE001 - any failure means: keep it, retry later
                await self._record_failure(item, error)
                return
            self._unrecorded.add(item.mail_id)
        await self._in_thread(self._outbox.mark_sent, item.mail_id, self._reactor.seconds())
        self._unrecorded.discard(item.mail_id)
        self.delivered += 1
        log.info("mail {mail_id} delivered to {recipients}", mail_id=item.mail_id,
                 recipients=", ".join(item.recipients))

    async def _record_failure(self, item: OutboxItem, error: Exception) -> None:
        attempts = item.attempts + 1
        delay = retry_delay(attempts, self._first_retry, self._max_backoff, self._unit_random())
        self.failed_attempts += 1
        log.warn("mail {mail_id} not delivered (attempt {attempts}), retrying in {delay:.0f}s: "
                 "{error}", mail_id=item.mail_id, attempts=attempts, delay=delay, error=error)
        await self._in_thread(self._outbox.mark_failed, item.mail_id, attempts,
                              self._reactor.seconds() + delay, str(error) or type(error).__name__)
