"""Alert and notice emails: rendering, header safety, delivery by SMTP or mbox, outbox retries."""

from __future__ import annotations

import email
import email.policy
import email.utils
import mailbox
import threading
import time
from dataclasses import replace
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
from twisted.internet import threads
from twisted.internet.selectreactor import SelectReactor

from flawless.report import Frame, Report
from flawless.server import mail
from flawless.server.alerting import Decision, Recipient
from flawless.server.blame import Blame
from flawless.server.routing import ErrorKey, Route, RoutedFrame
from flawless.server.rules import KnownError
from support.smtp import SmtpSink, free_port

SENDER = "Flawless <flawless@example.com>"
NOW = 1_763_700_000.0
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
CART_LINE = 'raise ValueError("negative price")'


def make_alert(blamed: bool = True, at_requested_revision: bool = True,
               email_header: Optional[str] = None, hostname: Optional[str] = "web-3",
               **report_changes: Any) -> mail.Alert:
    """An alert built from the real dataclasses: web.py calls cart.py, which raises."""
    frames = (
        Frame("/srv/app/shop/web.py", 12, "checkout", "cart.add_item(name, price)",
              {"name": "'apple'"}),
        Frame("/srv/app/shop/cart.py", 7, "add_item", CART_LINE,
              {"name": "'apple'", "price": "-3"}),
        Frame("/usr/lib/python3/site-packages/requests/api.py", 59, "get", "return x"),
    )
    report = replace(Report(
        exception_type="builtins.ValueError", exception_message="negative price",
        traceback=frames, hostname=hostname, revision="9fceb02d0ae598e95dc970b74767f19372d61af8",
        additional_info="GET /cart?id=7", context={"notebook": "analysis.ipynb", "cell": 12}),
        **report_changes)
    routed = (
        RoutedFrame(report.traceback[0], "shop/web.py", "shop/web.py", True),
        RoutedFrame(report.traceback[1], "shop/cart.py", "shop/cart.py", True),
        RoutedFrame(report.traceback[2], None, "requests/api.py", False),
    )
    key = ErrorKey("shop/cart.py", "add_item", CART_LINE) if blamed else \
        ErrorKey("requests/api.py", "get", "return x")
    route = Route(frames=routed, dropped_reason=None, blamed_index=1 if blamed else None, key=key,
                  known_error=None,
                  explanation=("requests/api.py is outside the repository",
                               "shop/cart.py:7 is the innermost line of the repository"))
    blame = Blame(path="shop/cart.py", line_number=7, author_name="Bob Builder",
                  author_email="bob@example.org",
                  commit_sha="3f786850e387550fdab836ed7e6dc881de23001b",
                  commit_summary="Reject negative prices", commit_timestamp=1_762_077_600.0,
                  revision="89e6c98d92887913cadf06b2adb97f26cde4849b",
                  at_requested_revision=at_requested_revision) if blamed else None
    decision = Decision(alert=True, reason="reached the threshold of 3",
                        recipients=(Recipient("bob@example.org", "last touched shop/cart.py:7"),
                                    Recipient("carol@example.net", "watches shop/")),
                        email_header=email_header)
    return mail.Alert(report=report, route=route, blame=blame, decision=decision, count=4,
                      first_seen=NOW - 86400, last_seen=NOW + 0.75,
                      base_url="http://flawless.example.com:8080", error_id=17)


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of an alert."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def reparse(message: EmailMessage) -> EmailMessage:
    """The message as a receiver sees it: its wire bytes parsed back."""
    parsed = email.message_from_bytes(mail.message_bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        self.hrefs += [value or "" for name, value in attrs if tag == "a" and name == "href"]


def html_links(html: str) -> list[str]:
    """Every <a href> of an HTML body, entities decoded."""
    parser = _Links()
    parser.feed(html)
    return parser.hrefs


# -- rendering --------------------------------------------------------------------------------


def test_subject_names_the_host_and_the_blamed_path() -> None:
    message = mail.render_alert(make_alert(), SENDER, now=NOW)
    assert message["Subject"] == "Error on web-3 in shop/cart.py"


def test_subject_falls_back_to_unknown_host_and_the_innermost_frame_when_unblamable() -> None:
    message = mail.render_alert(make_alert(blamed=False, hostname=None), SENDER, now=NOW)
    assert message["Subject"] == "Error on unknown host in requests/api.py"


def test_headers_carry_sender_recipients_date_and_a_message_id_of_the_sender_domain() -> None:
    message = reparse(mail.render_alert(make_alert(), SENDER, now=NOW))
    assert message["From"] == SENDER
    assert mail.message_recipients(message) == ("bob@example.org", "carol@example.net")
    assert email.utils.parsedate_to_datetime(message["Date"]).timestamp() == NOW
    assert message["Message-ID"].startswith("<") and \
        message["Message-ID"].endswith("@example.com>")
    other = mail.render_alert(make_alert(), SENDER, now=NOW)
    assert other["Message-ID"] != message["Message-ID"]


def test_alert_has_a_text_and_an_html_alternative() -> None:
    message = reparse(mail.render_alert(make_alert(), SENDER, now=NOW))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == \
        ["text/plain", "text/html"]


def test_traceback_runs_outermost_first_and_marks_the_blamed_line() -> None:
    text, html = parts(mail.render_alert(make_alert(), SENDER, now=NOW))
    file_lines = [line for line in text.splitlines() if 'File "' in line]
    assert [line.split('"')[1] for line in file_lines] == [
        "/srv/app/shop/web.py", "/srv/app/shop/cart.py",
        "/usr/lib/python3/site-packages/requests/api.py"]
    assert [line.startswith(">>") for line in file_lines] == [False, True, False]
    blamed_rows = [row for row in html.split("<tr") if "blamed:" in row]
    assert len(blamed_rows) == 1
    assert "background: #fff3b0" in blamed_rows[0] and "/srv/app/shop/cart.py" in blamed_rows[0]


def test_frame_locals_are_shown_where_they_were_sent() -> None:
    text, html = parts(mail.render_alert(make_alert(), SENDER, now=NOW))
    assert "price = -3" in text and "name = 'apple'" in text
    assert "price</td>" in html and "= -3</td>" in html


def test_blamed_commit_is_shown() -> None:
    text, html = parts(mail.render_alert(make_alert(), SENDER, now=NOW))
    for body in (text, html):
        assert "3f786850e387" in body and "Reject negative prices" in body
        assert "Bob Builder" in body and "bob@example.org" in body
        assert "2025-11-02 10:00:00 UTC" in body
        assert "ran at HEAD" not in body


def test_blame_at_head_says_why() -> None:
    text, html = parts(mail.render_alert(make_alert(at_requested_revision=False), SENDER, now=NOW))
    sentence = ("The blame ran at HEAD (89e6c98d9288) because the report's revision "
                "(9fceb02d0ae598e95dc970b74767f19372d61af8) was unknown")
    assert sentence in text
    assert sentence.replace("'", "&#39;") in html


def test_unblamable_error_says_so() -> None:
    text, _ = parts(mail.render_alert(make_alert(blamed=False), SENDER, now=NOW))
    assert "No line in the repository could be blamed" in text
    assert not any(line.startswith(">>") for line in text.splitlines())


def test_known_error_header_comes_first() -> None:
    alert = make_alert(email_header="Known issue: see ticket SHOP-7")
    text, html = parts(mail.render_alert(alert, SENDER, now=NOW))
    assert text.splitlines()[0] == "Known issue: see ticket SHOP-7"
    assert html.index("Known issue: see ticket SHOP-7") < html.index("builtins.ValueError</h2>")


def test_known_error_header_is_taken_from_the_rule_when_the_decision_has_none() -> None:
    alert = make_alert()
    rule = KnownError(filename="shop/cart.py", email_header="Rule header")
    alert = replace(alert, route=replace(alert.route, known_error=rule))
    text, _ = parts(mail.render_alert(alert, SENDER, now=NOW))
    assert text.splitlines()[0] == "Rule header"


def test_counts_times_info_and_context_are_shown() -> None:
    text, html = parts(mail.render_alert(make_alert(), SENDER, now=NOW))
    for body in (text, html):
        assert "4 occurrences" in body or "Occurrences: 4" in body
        assert "2025-11-20 04:40:00 UTC" in body and "2025-11-21 04:40:00 UTC" in body
        assert "GET /cart?id=7" in body
        assert "analysis.ipynb" in body and "cell" in body


def test_footer_lists_each_recipient_reason_and_the_route() -> None:
    text, html = parts(mail.render_alert(make_alert(), SENDER, now=NOW))
    footer = text[text.index("Why you got this email"):]
    assert "bob@example.org: last touched shop/cart.py:7" in footer
    assert "carol@example.net: watches shop/" in footer
    assert "shop/cart.py:7 is the innermost line of the repository" in footer
    html_footer = html[html.index("Why you got this email"):]
    assert "<li>carol@example.net: watches shop/</li>" in html_footer


def test_links_carry_the_error_identity_and_parse_back() -> None:
    alert = make_alert()
    text, html = parts(mail.render_alert(alert, SENDER, now=NOW))
    expected = {"filename": ["shop/cart.py"], "function_name": ["add_item"],
                "line_number": ["7"], "text": [CART_LINE], "timestamp": [str(int(NOW))]}
    hrefs = html_links(html)
    assert {urlsplit(href).path for href in hrefs} == {"/view_traceback", "/add_known_error",
                                                       "/developer"}
    for href in hrefs:
        assert href.startswith("http://flawless.example.com:8080/")
        query = parse_qs(urlsplit(href).query)
        if urlsplit(href).path == "/developer":
            assert query == {"email": [alert.blame.author_email]}
        else:
            assert query == expected
    text_links = [word for word in text.split() if word.startswith("http://")]
    assert sorted(text_links) == sorted(hrefs)


def test_links_of_an_unblamable_error_use_the_innermost_line() -> None:
    _, html = parts(mail.render_alert(make_alert(blamed=False), SENDER, now=NOW))
    query = parse_qs(urlsplit(html_links(html)[0]).query)
    assert query["filename"] == ["requests/api.py"] and query["line_number"] == ["59"]


def test_note_is_plain_text_to_its_recipients() -> None:
    note = reparse(mail.render_note("flawless: a rule file is broken",
                                    ["known_errors.yaml:3: unknown key 'foo'"],
                                    ["ops@example.com"], SENDER))
    assert note["Subject"] == "flawless: a rule file is broken"
    assert note["To"] == "ops@example.com" and note["From"] == SENDER
    assert note.get_content_type() == "text/plain"
    assert note["Date"] and note["Message-ID"].endswith("@example.com>")
    assert "known_errors.yaml:3: unknown key 'foo'" in note.get_content()


# -- injection --------------------------------------------------------------------------------


def hostile_alert() -> mail.Alert:
    """An alert whose every string coming from a report, a rule or git is hostile markup."""
    frame = Frame(HOSTILE, 3, HOSTILE, HOSTILE, {HOSTILE: HOSTILE})
    report = Report(exception_type=HOSTILE, exception_message=HOSTILE, traceback=(frame, frame),
                    hostname=HOSTILE, revision=HOSTILE, additional_info=HOSTILE,
                    context={HOSTILE: HOSTILE})
    route = Route(frames=(RoutedFrame(frame, HOSTILE, HOSTILE, True),
                          RoutedFrame(frame, None, HOSTILE, False)),
                  dropped_reason=None, blamed_index=0, key=ErrorKey(HOSTILE, HOSTILE, HOSTILE),
                  known_error=None, explanation=(HOSTILE,))
    blame = Blame(HOSTILE, 3, HOSTILE, HOSTILE, HOSTILE, HOSTILE, NOW, HOSTILE, False)
    decision = Decision(True, HOSTILE, (Recipient("bob@example.org", HOSTILE),),
                        email_header=HOSTILE)
    return mail.Alert(report, route, blame, decision, 1, NOW, NOW, "http://flawless.example.com")


def test_report_markup_is_escaped_in_the_html_part() -> None:
    text, html = parts(mail.render_alert(hostile_alert(), SENDER, now=NOW))
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    for href in html_links(html):
        query = parse_qs(urlsplit(href).query)
        assert query.get("filename", query.get("email")) == [HOSTILE]
    assert HOSTILE in text  # the text part shows the report as it is


def test_line_breaks_in_report_fields_never_create_headers() -> None:
    alert = make_alert(hostname="web-3\r\nBcc: evil@example.com",
                       exception_message="boom\r\nX-Injected: message")
    routed = alert.route.frames[1]
    bad_frame = replace(routed.frame, filename="/srv/app/shop/cart.py\nX-Injected: filename")
    route = replace(alert.route, frames=(alert.route.frames[0],
                                         replace(routed, frame=bad_frame,
                                                 repo_path="shop/cart.py\r\nX-Injected: path"),
                                         alert.route.frames[2]))
    decision = replace(alert.decision, recipients=(
        Recipient("bob@example.org\r\nX-Injected: rcpt", "because"),))
    message = mail.render_alert(replace(alert, route=route, decision=decision),
                                "flawless@example.com\nX-Injected: sender", now=NOW)
    parsed = reparse(message)
    assert set(parsed.keys()) == {"Subject", "From", "To", "Date", "Message-ID",
                                  "Auto-Submitted", "MIME-Version", "Content-Type"}
    assert parsed["Subject"] == "Error on web-3 Bcc: evil@example.com in shop/cart.py " \
                                "X-Injected: path"
    raw_headers = mail.message_bytes(message).split(b"\r\n\r\n", 1)[0]
    assert not any(line.startswith((b"Bcc", b"X-Injected")) for line in raw_headers.split(b"\r\n"))


def test_subject_is_bounded_and_free_of_control_characters() -> None:
    message = reparse(mail.render_alert(make_alert(hostname="h\x00\x1b[31m\u2028" + "x" * 5000),
                                        SENDER, now=NOW))
    subject = message["Subject"]
    assert len(subject) <= mail.MAX_SUBJECT_CHARS
    assert subject.startswith("Error on h [31m x")
    assert all(ord(char) >= 32 and char != "\u2028" for char in subject)


# -- delivery ---------------------------------------------------------------------------------


def sink_settings(sink: Any, **changes: Any) -> mail.SmtpSettings:
    return replace(mail.SmtpSettings(host="127.0.0.1", port=sink.port, timeout=5.0), **changes)


def test_smtp_delivery_reaches_every_recipient(smtp_sink: Any) -> None:
    message = mail.render_alert(make_alert(), SENDER, now=NOW)
    mail.deliver_smtp(message, sink_settings(smtp_sink))
    [(recipients, received)] = smtp_sink.wait_for(1)
    assert recipients == ["bob@example.org", "carol@example.net"]
    assert received["Subject"] == "Error on web-3 in shop/cart.py"
    assert received["Message-ID"] == message["Message-ID"]
    assert "price = -3" in parts(received)[0]


def test_mailbox_fallback_writes_a_readable_mbox(tmp_path: Any) -> None:
    path = str(tmp_path / "data" / "mailbox")
    (tmp_path / "data").mkdir()
    mail.deliver_mailbox(mail.render_alert(make_alert(), SENDER, now=NOW), path)
    deliver = mail.make_deliverer(None, path)
    note = mail.render_note("notice", ["line one"], ["ops@example.com"], SENDER)
    deliver(mail.message_bytes(note), ("ops@example.com",))
    box = mailbox.mbox(path, create=False)
    try:
        messages = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                    for key in box.keys()]
    finally:
        box.close()
    assert [m["Subject"] for m in messages] == ["Error on web-3 in shop/cart.py", "notice"]
    assert "price = -3" in parts(messages[0])[0]  # type: ignore[arg-type]
    assert b"\r\n" not in open(path, "rb").read()


def test_smtp_down_raises_delivery_error() -> None:
    stopped = SmtpSink().start()
    settings = sink_settings(stopped)
    stopped.stop()
    message = mail.render_note("notice", ["x"], ["ops@example.com"], SENDER)
    with pytest.raises(mail.DeliveryError, match=f"127.0.0.1:{settings.port}"):
        mail.deliver_smtp(message, settings)
    with pytest.raises(mail.DeliveryError):
        mail.deliver_smtp(message, replace(settings, port=free_port()))


def test_delivery_error_never_shows_the_password(smtp_sink: Any) -> None:
    settings = sink_settings(smtp_sink, user="flawless", password="s3cret-Pa55")
    message = mail.render_note("notice", ["x"], ["ops@example.com"], SENDER)
    with pytest.raises(mail.DeliveryError) as caught:
        mail.deliver_smtp(message, settings)  # the sink offers no AUTH: login fails
    assert "s3cret-Pa55" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "s3cret-Pa55" not in repr(settings)


def test_refused_mail_raises_delivery_error(smtp_sink: Any) -> None:
    smtp_sink.refuse(True)
    with pytest.raises(mail.DeliveryError, match="451"):
        mail.deliver_smtp(mail.render_note("n", ["x"], ["a@example.com"], SENDER),
                          sink_settings(smtp_sink))


# -- outbox -----------------------------------------------------------------------------------


def test_retry_delay_starts_within_seconds_doubles_and_is_capped() -> None:
    assert 1.0 <= mail.retry_delay(1, 2.0, 3600.0, 0.0) <= mail.retry_delay(1, 2.0, 3600.0,
                                                                              0.999) <= 2.0
    assert mail.retry_delay(3, 2.0, 3600.0, 0.5) == 2 * mail.retry_delay(2, 2.0, 3600.0, 0.5)
    assert mail.retry_delay(1000, 2.0, 3600.0, 0.999) <= 3600.0
    assert mail.retry_delay(1000, 2.0, 3600.0, 0.0) >= 1800.0


class MemoryOutbox:
    """An in-memory outbox keeping every call, thread-safe like the real store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[int, dict[str, Any]] = {}
        self.sent_marks: dict[int, int] = {}
        self.failures: list[tuple[int, int, float, str]] = []
        self.polls = 0

    def queue(self, message: EmailMessage) -> int:
        with self.lock:
            mail_id = len(self.rows) + 1
            self.rows[mail_id] = {"message": mail.message_bytes(message), "attempts": 0,
                                  "recipients": mail.message_recipients(message),
                                  "next": 0.0, "sent": None}
            return mail_id

    def due_mail(self, now: float, limit: int) -> list[mail.OutboxItem]:
        with self.lock:
            self.polls += 1
            return [mail.OutboxItem(mail_id, row["message"], row["recipients"], row["attempts"])
                    for mail_id, row in sorted(self.rows.items())
                    if row["sent"] is None and row["next"] <= now][:limit]

    def mark_sent(self, mail_id: int, now: float) -> None:
        with self.lock:
            self.sent_marks[mail_id] = self.sent_marks.get(mail_id, 0) + 1
            self.rows[mail_id]["sent"] = now

    def mark_failed(self, mail_id: int, attempts: int, next_attempt_at: float,
                    error: str) -> None:
        with self.lock:
            self.failures.append((mail_id, attempts, next_attempt_at, error))
            self.rows[mail_id].update(attempts=attempts, next=next_attempt_at)

    def attempts(self) -> list[int]:
        with self.lock:
            return [row["attempts"] for _, row in sorted(self.rows.items())]


@pytest.fixture
def reactor():  # type: ignore[no-untyped-def]
    """A real reactor of its own, running in a background thread."""
    running = SelectReactor()
    thread = threading.Thread(target=running.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    yield running
    running.callFromThread(running.stop)
    thread.join(5)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def started(reactor: Any):  # type: ignore[no-untyped-def]
    """Start an OutboxSender in ``reactor``; stopped (and waited for) at the end."""
    senders: list[mail.OutboxSender] = []

    def start(outbox: MemoryOutbox, deliver: mail.Deliverer, **options: Any) -> mail.OutboxSender:
        sender = mail.OutboxSender(outbox, deliver, reactor=reactor, **options)
        threads.blockingCallFromThread(reactor, sender.start)
        senders.append(sender)
        return sender

    yield start
    for sender in senders:
        threads.blockingCallFromThread(reactor, sender.stop)


def alert_to(address: str) -> EmailMessage:
    alert = make_alert()
    decision = replace(alert.decision, recipients=(Recipient(address, "test"),))
    return mail.render_alert(replace(alert, decision=decision), SENDER, now=NOW)


def test_outbox_retries_refused_mail_until_each_is_delivered_exactly_once(
        reactor: Any, started: Any, smtp_sink: Any) -> None:
    outbox = MemoryOutbox()
    addresses = [f"dev{index}@example.com" for index in range(3)]
    for address in addresses:
        outbox.queue(alert_to(address))
    smtp_sink.refuse(True)
    started(outbox, mail.make_deliverer(sink_settings(smtp_sink), "unused"),
            poll_interval=0.05, first_retry=0.05, max_backoff=0.2)
    assert wait_until(lambda: min(outbox.attempts()) >= 2)
    assert smtp_sink.messages == []
    assert all("451" in error for *_, error in outbox.failures)
    smtp_sink.refuse(False)
    assert wait_until(lambda: len(outbox.sent_marks) == 3)
    time.sleep(0.3)  # a duplicate would arrive within a few polls
    assert sorted(recipients[0] for recipients, _ in smtp_sink.messages) == addresses
    assert outbox.sent_marks == {1: 1, 2: 1, 3: 1}


def test_outbox_backoff_starts_within_seconds(reactor: Any, started: Any) -> None:
    outbox = MemoryOutbox()
    outbox.queue(alert_to("dev@example.com"))

    def refuse(data: bytes, recipients: tuple[str, ...]) -> None:
        raise mail.DeliveryError("down")

    started(outbox, refuse, poll_interval=0.05)
    assert wait_until(lambda: bool(outbox.failures))
    before = time.time()
    [(mail_id, attempts, next_attempt_at, error)] = outbox.failures
    assert (mail_id, attempts, error) == (1, 1, "down")
    assert before - 1 <= next_attempt_at <= before + 2.5


def test_wake_delivers_at_once_instead_of_at_the_next_poll(
        reactor: Any, started: Any, smtp_sink: Any) -> None:
    outbox = MemoryOutbox()
    sender = started(outbox, mail.make_deliverer(sink_settings(smtp_sink), "unused"),
                     poll_interval=60.0)
    assert wait_until(lambda: outbox.polls >= 1)
    time.sleep(0.1)
    outbox.queue(alert_to("dev@example.com"))
    reactor.callFromThread(sender.wake)
    assert len(smtp_sink.wait_for(1, timeout=3.0)) == 1
    assert outbox.sent_marks == {1: 1}


def test_stop_waits_for_the_mail_in_flight(reactor: Any, smtp_sink: Any) -> None:
    outbox = MemoryOutbox()
    outbox.queue(alert_to("dev@example.com"))
    outbox.queue(alert_to("other@example.com"))
    in_flight, release = threading.Event(), threading.Event()
    smtp = mail.make_deliverer(sink_settings(smtp_sink), "unused")

    def slow(data: bytes, recipients: tuple[str, ...]) -> None:
        in_flight.set()
        release.wait(5)
        smtp(data, recipients)

    sender = mail.OutboxSender(outbox, slow, reactor=reactor)
    threads.blockingCallFromThread(reactor, sender.start)
    assert in_flight.wait(5)
    [stopped] = threads.blockingCallFromThread(reactor, lambda: [sender.stop()])
    time.sleep(0.1)
    assert not stopped.called
    release.set()
    assert wait_until(lambda: stopped.called)
    assert outbox.sent_marks == {1: 1}  # the first one finished; the second waits in the outbox
    assert [recipients for recipients, _ in smtp_sink.messages] == [["dev@example.com"]]


def test_a_delivered_mail_is_not_resent_when_recording_it_fails(
        reactor: Any, started: Any) -> None:
    outbox = MemoryOutbox()
    outbox.queue(alert_to("dev@example.com"))
    deliveries: list[tuple[str, ...]] = []
    original_mark_sent = outbox.mark_sent
    failures = [RuntimeError("database is locked")]

    def flaky_mark_sent(mail_id: int, now: float) -> None:
        if failures:
            raise failures.pop()
        original_mark_sent(mail_id, now)

    outbox.mark_sent = flaky_mark_sent  # type: ignore[method-assign]
    started(outbox, lambda data, recipients: deliveries.append(recipients), poll_interval=0.05)
    assert wait_until(lambda: outbox.sent_marks == {1: 1})
    time.sleep(0.2)
    assert deliveries == [("dev@example.com",)]
