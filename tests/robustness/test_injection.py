"""Injection: markup in any report field (or in a commit's author and summary) is shown as
text in emails and pages; CR/LF never creates an email header; subjects are bounded."""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from support.gitrepo import shop_repo
from support.server import start_server
from support.smtp import SmtpSink

from .common import ALICE_LINE, BOB_LINE, get_page, report

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)><a href="javascript:x">'
RAW_MARKERS = ("<script", "<img src=x", 'href="javascript:')
HEADERS_OF_A_MAIL = {"subject", "from", "to", "date", "message-id", "auto-submitted",
                     "mime-version", "content-type", "content-transfer-encoding"}
EVIL_AUTHOR = ('<b onmouseover="x">Eve</b>', "eve@example.com")


def marked(name: str) -> str:
    return f"{name}{MARKUP}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A shop whose newest commit carries markup in its author name and summary."""
    root = tmp_path_factory.mktemp("injection")
    shop = shop_repo(root / "shop-repo")
    shop.commit(EVIL_AUTHOR, {"shop/evil.py": "def run():\n    return 1 / 0\n"},
                f"Add run {MARKUP}", date="2026-11-05T10:00:00+00:00")
    sink = SmtpSink().start()
    server = start_server(root / "server", repo_dir=shop.path, smtp_hostport=sink.hostport,
                          report_error_threshold=1, hostname="http://flawless.test:8080")
    yield server, sink
    server.stop()
    sink.stop()


def hostile_report(function_name: str, frame=ALICE_LINE, hostname: str = marked("web")):
    outer = {"filename": marked("/srv/app/x.py"), "line_number": 3,
             "function_name": marked("outer"), "text": marked("call()"),
             "frame_locals": {marked("name"): marked("value")}}
    inner = dict(frame, function_name=function_name,
                 frame_locals={"qty": marked("3"), marked("key"): "1"})
    return report(inner, exception_type=marked("builtins.ValueError"),
                  exception_message=marked("message\r\nBcc: victim@evil.example\r\n"),
                  hostname=hostname, additional_info=marked("GET /cart\r\nX-Injected: 1"),
                  context={marked("notebook"): marked("analysis.ipynb"), "cell": MARKUP},
                  traceback=[outer, inner])


def alert_for(sink, function_name: str):
    found = sink.wait_for(1, where=lambda _, message: function_name in
                          message.get_body(("plain",)).get_content())
    assert found, f"no alert mentions {function_name}"
    return found[0]


def assert_safe_html(html: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in html, f"raw {marker!r} in HTML"


def test_markup_in_every_field_is_text_in_the_alert(world):
    server, sink = world
    assert server.record(hostile_report("markup_everywhere"))["result"] == {"accepted": True}
    recipients, message = alert_for(sink, "markup_everywhere")
    assert recipients == ["alice@example.com"]
    html = message.get_body(("html",)).get_content()
    assert_safe_html(html)
    assert "&lt;script&gt;" in html
    text = message.get_body(("plain",)).get_content()
    assert MARKUP in text  # plain text shows exactly what was sent
    assert {name.lower() for name in message.keys()} <= HEADERS_OF_A_MAIL
    assert message["Bcc"] is None and message["X-Injected"] is None


def test_markup_in_a_commit_author_and_summary_is_text(world):
    server, sink = world
    frame = {"filename": "/srv/app/shop/evil.py", "line_number": 2, "function_name": "run",
             "text": "return 1 / 0"}
    assert server.record(report(frame, exception_message="evil commit"))["result"] == {
        "accepted": True}
    recipients, message = alert_for(sink, "evil commit")
    assert recipients == ["eve@example.com"]
    html = message.get_body(("html",)).get_content()
    assert_safe_html(html)
    # git itself drops < and > from author names; the quotes left must be escaped.
    assert 'onmouseover=&#34;x&#34;' in html and "Add run &lt;script&gt;" in html


@pytest.mark.parametrize("hostname", [
    "web-1\r\nBcc: victim@evil.example", "web-1\nX-Injected: 1", "web-1\rSubject: spoof",
    "web-1\u2028Bcc: victim@evil.example", "web-1\x85X-Injected: 1", "h" * 255])
def test_line_breaks_never_make_a_header_and_subjects_are_bounded(world, hostname):
    server, sink = world
    name = f"crlf_{abs(hash(hostname))}"
    frame = dict(BOB_LINE, function_name=name,
                 filename="/srv/app/shop/cart.py\r\nX-Injected: 1" if "\r" in hostname
                 else BOB_LINE["filename"])
    assert server.record(report(frame, hostname=hostname,
                                exception_message=f"{name}\r\nBcc: x@evil.example"))[
        "result"] == {"accepted": True}
    recipients, message = alert_for(sink, name)
    assert recipients in (["bob@example.org"], ["oncall@example.com"])
    assert {key.lower() for key in message.keys()} <= HEADERS_OF_A_MAIL
    subject = message["Subject"]
    assert "\n" not in subject and "\r" not in subject and len(subject) <= 200
    assert "victim@evil.example" not in (message["To"] or "")


def error_pages(server) -> list[str]:
    """Every dashboard URL that shows the stored errors."""
    rows = server.query("SELECT filename, function_name, text, line_number FROM errors")
    urls = [server.web_url + "/", server.web_url + "/?include_known_errors=1",
            server.web_url + "/developer?" + urllib.parse.urlencode({"email": MARKUP}),
            server.web_url + "/developer?email=eve%40example.com",
            server.web_url + "/view_traceback?" + urllib.parse.urlencode(
                {"filename": MARKUP, "function_name": MARKUP, "line_number": 1,
                 "text": MARKUP})]
    urls += [server.web_url + "/view_traceback?" + urllib.parse.urlencode(
        {"filename": row[0], "function_name": row[1], "text": row[2], "line_number": row[3]})
        for row in rows]
    return urls


def test_markup_is_text_in_every_dashboard_page(world):
    server, _ = world
    assert server.record(hostile_report("markup_pages"))["result"] == {"accepted": True}
    assert server.wait_until(lambda: server.inbox_depth() == 0)
    shown = 0
    for url in error_pages(server):
        status, html = get_page(url)
        assert status < 500, (url, status)
        assert_safe_html(html)
        shown += "&lt;script&gt;" in html
    assert shown, "no page showed the markup at all"


def test_health_and_json_api_are_json_not_html(world):
    server, _ = world
    status, text = get_page(server.web_url + "/check_health")
    assert status == 200
    health = json.loads(text)
    assert health["status"] == "ok"
    status, text = get_page(server.web_url + "/api/weekly_report")
    if status == 200:
        json.loads(text)  # markup inside JSON strings is the client's to escape
    assert not re.search(r"(?i)smtp_password|admin_password", text)
