"""The email channel: SMTP delivery to every recipient, the mbox fallback, and failures that
name the server but never the password."""

from __future__ import annotations

import email
import email.policy
import mailbox
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import pytest

from flawless.server.delivery import render
from flawless.server.delivery.channels import DeliveryError
from flawless.server.delivery.channels.email import SmtpSettings, append_to_mailbox, send_smtp
from support.alerts import NOW, SENDER, make_alert, parts
from support.smtp import SmtpSink, free_port


def send_message(message: EmailMessage, settings: SmtpSettings) -> None:
    send_smtp(render.message_bytes(message), render.message_recipients(message), settings)


def sink_settings(sink: Any, **changes: Any) -> SmtpSettings:
    return replace(SmtpSettings(host="127.0.0.1", port=sink.port, timeout=5.0), **changes)


def test_smtp_delivery_reaches_every_recipient(smtp_sink: Any) -> None:
    message = render.render_alert(make_alert(), SENDER, now=NOW)
    send_message(message, sink_settings(smtp_sink))
    [(recipients, received)] = smtp_sink.wait_for(1)
    assert recipients == ["bob@example.org", "carol@example.net"]
    assert received["Subject"] == "ValueError in add_item (shop/cart.py:7) on web-3"
    assert received["Message-ID"] == message["Message-ID"]
    assert "price = -3" in parts(received)[0]


def test_mailbox_fallback_writes_a_readable_mbox(tmp_path: Any) -> None:
    path = str(tmp_path / "data" / "mailbox")
    (tmp_path / "data").mkdir()
    alert = render.render_alert(make_alert(), SENDER, now=NOW)
    append_to_mailbox(render.message_bytes(alert), render.message_recipients(alert), path)
    note = render.render_note("notice", ["line one"], ["ops@example.com"], SENDER)
    append_to_mailbox(render.message_bytes(note), ("ops@example.com",), path)
    box = mailbox.mbox(path, create=False)
    try:
        messages = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                    for key in box.keys()]
    finally:
        box.close()
    assert [m["Subject"] for m in messages] == ["ValueError in add_item (shop/cart.py:7) on web-3", "notice"]
    assert "price = -3" in parts(messages[0])[0]  # type: ignore[arg-type]
    assert b"\r\n" not in open(path, "rb").read()


def test_smtp_down_raises_delivery_error() -> None:
    stopped = SmtpSink().start()
    settings = sink_settings(stopped)
    stopped.stop()
    message = render.render_note("notice", ["x"], ["ops@example.com"], SENDER)
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{settings.port}"):
        send_message(message, settings)
    with pytest.raises(DeliveryError):
        send_message(message, replace(settings, port=free_port()))


def test_delivery_error_never_shows_the_password(smtp_sink: Any) -> None:
    settings = sink_settings(smtp_sink, user="flawless", password="s3cret-Pa55")
    message = render.render_note("notice", ["x"], ["ops@example.com"], SENDER)
    with pytest.raises(DeliveryError) as caught:
        send_message(message, settings)  # the sink offers no AUTH: login fails
    assert "s3cret-Pa55" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "s3cret-Pa55" not in repr(settings)


def test_refused_mail_raises_delivery_error(smtp_sink: Any) -> None:
    smtp_sink.refuse(True)
    with pytest.raises(DeliveryError, match="451"):
        send_message(render.render_note("n", ["x"], ["a@example.com"], SENDER),
                          sink_settings(smtp_sink))
