"""The dashboard in a real headless Chromium, against the real server with real reports, a
real git repository and a real SMTP server."""

from __future__ import annotations

import urllib.parse
from email.message import EmailMessage
from typing import Iterator

import pytest

from support.chromium import NOT_INSTALLED, have_chromium
from support.gitrepo import GitRepo, shop_repo
from support.server import FlawlessProcess, start_server
from support.smtp import SmtpSink

playwright = pytest.importorskip("playwright.sync_api")

PASSWORD = "open sesame, but longer"
PAYLOAD = '<script>alert("xss")</script>"><img src=x onerror=alert("img")>'

pytestmark = pytest.mark.skipif(not have_chromium(), reason=NOT_INSTALLED)


def frame(repo: GitRepo, path: str, line: int, function: str, text: str) -> dict:
    return {"filename": str(repo.path / path), "line_number": line, "function_name": function,
            "text": text}


def average_report(repo: GitRepo) -> dict:
    """Cart.average on an empty cart: Bob wrote that line."""
    return {"exception_type": "builtins.ZeroDivisionError",
            "exception_message": "division by zero", "hostname": "web-3",
            "traceback": [frame(repo, "shop/pricing.py", 8, "checkout", "return cart.total()"),
                          frame(repo, "shop/cart.py", 14, "average",
                                "return self.total() / len(self.items)")]}


def total_report(repo: GitRepo) -> dict:
    """Cart.total over a price that is a string: Alice wrote that line."""
    return {"exception_type": "builtins.TypeError",
            "exception_message": "unsupported operand type(s) for +: 'int' and 'str'",
            "hostname": "web-1",
            "traceback": [frame(repo, "shop/cart.py", 11, "total",
                                "return sum(price for _, price in self.items)")]}


def hostile_report() -> dict:
    """Every string field of the report holds markup."""
    return {"exception_type": PAYLOAD, "exception_message": PAYLOAD, "hostname": PAYLOAD,
            "revision": PAYLOAD, "additional_info": PAYLOAD, "context": {PAYLOAD: PAYLOAD},
            "traceback": [{"filename": PAYLOAD, "line_number": 3, "function_name": PAYLOAD,
                           "text": PAYLOAD, "frame_locals": {PAYLOAD: PAYLOAD}}]}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[FlawlessProcess, SmtpSink, GitRepo]]:
    directory = tmp_path_factory.mktemp("browser")
    repo = shop_repo(directory / "shop")
    sink = SmtpSink().start()
    server = start_server(directory / "server", repo_dir=repo.path,
                          smtp_hostport=sink.hostport, admin_password=PASSWORD,
                          report_error_threshold=1)
    for _ in range(3):
        server.record(average_report(repo))
    server.record(total_report(repo))
    sink.wait_for(2)
    yield server, sink, repo
    server.stop()
    sink.stop()


def mail_about(sink: SmtpSink, text: str) -> EmailMessage:
    found = sink.wait_for(1, where=lambda _, message: text in message.get_body(
        ("plain",)).get_content())
    assert found, f"no email mentions {text!r}"
    return found[-1][1]


def dashboard_link(server: FlawlessProcess, message: EmailMessage, path: str) -> str:
    """The link to ``path`` in the email, on this server's actual port."""
    html = message.get_body(("html",)).get_content()
    start = html.index(f"/{path}?")
    end = html.index('"', start)
    query = html[start:end].replace("&amp;", "&")
    return server.web_url + query


def test_the_leaderboard_shows_the_weeks_errors_by_developer(world, page):
    server, _, _ = world
    page.goto(server.web_url + "/")
    developers = page.locator("section.developer h2 a").all_inner_texts()
    assert developers[:2] == ["Bob Builder", "Alice Liddell"]
    bob = page.locator("section.developer").first
    assert bob.locator(".total").inner_text() == "3"
    assert "shop/cart.py:14" in bob.inner_text() and "ZeroDivisionError" in bob.inner_text()
    page.fill("input[name=q]", "TypeError")
    page.click("form.filter button")
    assert page.locator("section.developer h2 a").all_inner_texts() == ["Alice Liddell"]
    page.click("text=Previous week")
    assert "No error this week matches TypeError" in page.inner_text("main")
    page.click("text=Clear")
    assert "No errors were reported in the week of" in page.inner_text("main")


def test_the_traceback_link_in_a_real_email_opens_the_error(world, page):
    server, sink, _ = world
    message = mail_about(sink, "division by zero")
    page.goto(dashboard_link(server, message, "view_traceback"))
    main = page.inner_text("main")
    assert "builtins.ZeroDivisionError" in main and "division by zero" in main
    assert page.inner_text(".facts dd.big") == "3"
    assert "Add Cart.average" in main and "Bob Builder" in main
    assert "innermost line of the repository" in main
    assert page.locator("svg.chart rect.bar").count() == 56
    assert page.locator("li.frame.blamed").inner_text().count("average") >= 1
    page.click("text=Bob Builder")
    assert page.inner_text("h1") == "Bob Builder"
    assert "shop/cart.py:14" in page.inner_text("main")


def test_a_lead_silences_an_error_from_the_email_and_the_next_report_obeys(world, page):
    server, sink, repo = world
    message = mail_about(sink, "unsupported operand")
    page.goto(dashboard_link(server, message, "add_known_error"))
    assert page.inner_text("h1") == "Log in"
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    assert page.inner_text("main h1") == "Add a known error"
    assert page.input_value("input[name=filename]") == "shop/cart.py"
    assert page.input_value("input[name=function_name]") == "total"
    assert page.input_value("input[name=code_fragment]") == (
        "return sum(price for _, price in self.items)")
    page.fill("input[name=email_header]", "Known: prices arrive as text from the old API")
    page.click("text=Add known error")
    assert "Added to known_errors.yaml" in page.inner_text("main")

    mails_before = len(sink.messages)
    server.record(total_report(repo))
    assert server.wait_until(lambda: server.query(
        "SELECT known, count FROM errors WHERE function_name = 'total'") == [(1, 2)]), \
        server.log()[-2000:]
    page.goto(dashboard_link(server, message, "view_traceback"))
    assert "known error" in page.inner_text("h1")
    assert "known_errors.yaml" in page.inner_text("ol.explanation")
    assert len(sink.messages) == mails_before
    page.goto(server.web_url + "/")
    assert "Alice Liddell" not in page.inner_text("main")  # known errors are hidden


def test_a_hostile_report_renders_as_text_everywhere_and_runs_no_script(world, page):
    server, sink, _ = world
    server.record(hostile_report())
    message = mail_about(sink, "onerror=alert")
    query = urllib.parse.urlencode({"filename": PAYLOAD, "function_name": PAYLOAD,
                                    "text": PAYLOAD, "line_number": 3})
    pages = [server.web_url + "/?include_known_errors=1",
             server.web_url + "/view_traceback?" + query,
             server.web_url + "/developer?" + urllib.parse.urlencode({"email": PAYLOAD}),
             server.web_url + "/api/weekly_report"]
    for address in pages:
        page.goto(address)
        assert page.locator("script").count() == 0
        assert page.locator("img[onerror]").count() == 0
    page.goto(pages[1])
    assert PAYLOAD in page.inner_text("main")
    # The email's HTML part, opened in the same browser, shows the markup as text too.
    page.set_content(message.get_body(("html",)).get_content())
    assert page.locator("script").count() == 0 and page.locator("img[onerror]").count() == 0
    assert "<script>" in page.inner_text("body")
    page.wait_for_timeout(200)
    assert page.dialogs == []
