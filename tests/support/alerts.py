"""An alert built from the real dataclasses, and ways to read a rendered message back."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any, Optional

from flawless.report import Frame, Report
from flawless.server.core.model import (Blame, Decision, ErrorKey, Recipient, Route,
                                        RoutedFrame)
from flawless.server.delivery import render

SENDER = "Flawless <flawless@example.com>"
NOW = 1_763_700_000.0
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
CART_LINE = 'raise ValueError("negative price")'


def make_alert(blamed: bool = True, at_requested_revision: bool = True,
               email_header: Optional[str] = None, hostname: Optional[str] = "web-3",
               **report_changes: Any) -> render.Alert:
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
    return render.Alert(report=report, route=route, blame=blame, decision=decision, count=4,
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
    parsed = email.message_from_bytes(render.message_bytes(message), policy=email.policy.default)
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
