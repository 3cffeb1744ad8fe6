"""Alert and notice emails as rendered: subject, headers, both alternatives, the blame, the
links back to the dashboard, and text from reports or commits that cannot break any of it."""

from __future__ import annotations

import email.utils
from dataclasses import replace
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from flawless.report import ChainedException, Frame, NotebookCell, Report, RequestInfo
from flawless.server.core.fixes import error_link
from flawless.server.core.model import (Blame, CellBlame, Decision, ErrorKey, KnownError,
                                        Recipient, Route, RoutedException, RoutedFrame)
from flawless.server.delivery import render
from support.alerts import (CART_LINE, HOSTILE, NOW, SENDER, html_links, make_alert, parts,
                            reparse)


# -- rendering --------------------------------------------------------------------------------


def test_subject_names_the_type_function_blamed_line_and_host() -> None:
    message = render.render_alert(make_alert(), SENDER, now=NOW)
    assert message["Subject"] == "ValueError in add_item (shop/cart.py:7) on web-3"


def test_subject_falls_back_to_unknown_host_and_the_innermost_frame_when_unblamable() -> None:
    message = render.render_alert(make_alert(blamed=False, hostname=None), SENDER, now=NOW)
    assert message["Subject"] == "ValueError in get (requests/api.py:59) on an unknown host"


def test_different_errors_of_one_file_have_different_subjects() -> None:
    alert = make_alert()
    other_frame = replace(alert.route.frames[1].frame, line_number=9, function_name="total")
    other = replace(alert, report=replace(alert.report, exception_type="builtins.KeyError"),
                    route=replace(alert.route, frames=(
                        alert.route.frames[0], replace(alert.route.frames[1], frame=other_frame),
                        alert.route.frames[2])))
    subjects = {render.render_alert(one, SENDER, now=NOW)["Subject"] for one in (alert, other)}
    assert subjects == {"ValueError in add_item (shop/cart.py:7) on web-3",
                        "KeyError in total (shop/cart.py:9) on web-3"}


def test_a_regression_says_so_first_in_the_subject_and_the_body() -> None:
    alert = make_alert()
    regressed = replace(alert, decision=replace(
        alert.decision, reason="regression: regressed in 89e6c98d9288, which contains the fix",
        regression="regressed in 89e6c98d9288, which contains the fix"))
    message = render.render_alert(regressed, SENDER, now=NOW)
    assert message["Subject"] == "Regression: ValueError in add_item (shop/cart.py:7) on web-3"
    text, html = parts(message)
    assert text.startswith("Regression: regressed in 89e6c98d9288, which contains the fix\n")
    assert "<b>Regression:</b> regressed in 89e6c98d9288" in html
    assert "* alert: regression: regressed in 89e6c98d9288" in text   # the footer
    assert not parts(render.render_alert(alert, SENDER, now=NOW))[0].startswith("Regression")


def test_headers_carry_sender_recipients_date_and_a_message_id_of_the_sender_domain() -> None:
    message = reparse(render.render_alert(make_alert(), SENDER, now=NOW))
    assert message["From"] == SENDER
    assert render.message_recipients(message) == ("bob@example.org", "carol@example.net")
    assert email.utils.parsedate_to_datetime(message["Date"]).timestamp() == NOW
    assert message["Message-ID"].startswith("<") and \
        message["Message-ID"].endswith("@example.com>")
    other = render.render_alert(make_alert(), SENDER, now=NOW)
    assert other["Message-ID"] != message["Message-ID"]


def test_alert_has_a_text_and_an_html_alternative() -> None:
    message = reparse(render.render_alert(make_alert(), SENDER, now=NOW))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == \
        ["text/plain", "text/html"]


def test_traceback_runs_outermost_first_and_marks_the_blamed_line() -> None:
    text, html = parts(render.render_alert(make_alert(), SENDER, now=NOW))
    file_lines = [line for line in text.splitlines() if 'File "' in line]
    assert [line.split('"')[1] for line in file_lines] == [
        "/srv/app/shop/web.py", "/srv/app/shop/cart.py",
        "/usr/lib/python3/site-packages/requests/api.py"]
    assert [line.startswith(">>") for line in file_lines] == [False, True, False]
    blamed_rows = [row for row in html.split("<tr") if "blamed:" in row]
    assert len(blamed_rows) == 1
    assert "background: #fff3b0" in blamed_rows[0] and "/srv/app/shop/cart.py" in blamed_rows[0]


def test_every_exception_of_the_chain_is_shown_the_first_raised_first() -> None:
    cause = Frame("/srv/app/shop/prices.py", 3, "parse", "return int(text)")
    alert = make_alert(exception_type="shop.CartError", exception_message="cannot add",
                       chained=(ChainedException("builtins.ValueError", "invalid literal: 'x'",
                                                 (cause,)),))
    chain = (RoutedException("builtins.ValueError",
                             (RoutedFrame(cause, "shop/prices.py", "shop/prices.py", True),)),)
    route = replace(alert.route, chain=chain, blamed_exception=1, blamed_index=0)
    text, html = parts(render.render_alert(replace(alert, route=route), SENDER, now=NOW))
    first, second = text.index("builtins.ValueError: invalid literal: 'x'"), \
        text.rindex("shop.CartError: cannot add")
    assert first < text.index("The above exception was the cause") < second
    assert [line.split('"')[1] for line in text.splitlines() if line.startswith(">>")] == [
        "/srv/app/shop/prices.py"]
    assert text.count("Traceback (most recent call last") == 2
    blamed_rows = [row for row in html.split("<tr") if "blamed:" in row]
    assert len(blamed_rows) == 1 and "/srv/app/shop/prices.py" in blamed_rows[0]
    assert html.index("invalid literal") < html.index("The above exception") < \
        html.rindex("cannot add")


def test_javascript_frames_show_their_column_like_python_frames_their_line() -> None:
    alert = make_alert()
    frames = list(alert.report.traceback)
    frames[1] = replace(frames[1], filename="src/checkout.ts", column_number=10)
    alert = replace(alert, report=replace(alert.report, traceback=tuple(frames)))
    text, html = parts(render.render_alert(alert, SENDER, now=NOW))
    assert '>> File "src/checkout.ts", line 7, column 10, in add_item' in text
    assert "line <b>7</b>, column 10, in" in html
    assert text.count("column") == 1


def test_frame_locals_are_shown_where_they_were_sent() -> None:
    text, html = parts(render.render_alert(make_alert(), SENDER, now=NOW))
    assert "price = -3" in text and "name = 'apple'" in text
    assert "price</td>" in html and "= -3</td>" in html


def test_blamed_commit_is_shown() -> None:
    text, html = parts(render.render_alert(make_alert(), SENDER, now=NOW))
    for body in (text, html):
        assert "3f786850e387" in body and "Reject negative prices" in body
        assert "Bob Builder" in body and "bob@example.org" in body
        assert "2025-11-02 10:00:00 UTC" in body
        assert "ran at HEAD" not in body


def test_blame_at_head_says_why() -> None:
    text, html = parts(render.render_alert(make_alert(at_requested_revision=False), SENDER, now=NOW))
    sentence = ("The blame ran at HEAD (89e6c98d9288) because the report's revision "
                "(9fceb02d0ae598e95dc970b74767f19372d61af8) was unknown")
    assert sentence in text
    assert sentence.replace("'", "&#39;") in html


def test_unblamable_error_says_so() -> None:
    text, _ = parts(render.render_alert(make_alert(blamed=False), SENDER, now=NOW))
    assert "No line in the repository could be blamed" in text
    assert not any(line.startswith(">>") for line in text.splitlines())


def test_known_error_header_comes_first() -> None:
    alert = make_alert(email_header="Known issue: see ticket SHOP-7")
    text, html = parts(render.render_alert(alert, SENDER, now=NOW))
    assert text.splitlines()[0] == "Known issue: see ticket SHOP-7"
    assert html.index("Known issue: see ticket SHOP-7") < html.index("builtins.ValueError</h2>")


def test_known_error_header_is_taken_from_the_rule_when_the_decision_has_none() -> None:
    alert = make_alert()
    rule = KnownError(filename="shop/cart.py", email_header="Rule header")
    alert = replace(alert, route=replace(alert.route, known_error=rule))
    text, _ = parts(render.render_alert(alert, SENDER, now=NOW))
    assert text.splitlines()[0] == "Rule header"


def test_counts_times_info_and_context_are_shown() -> None:
    text, html = parts(render.render_alert(make_alert(), SENDER, now=NOW))
    for body in (text, html):
        assert "4 occurrences" in body or "Occurrences: 4" in body
        assert "2025-11-20 04:40:00 UTC" in body and "2025-11-21 04:40:00 UTC" in body
        assert "GET /cart?id=7" in body
        assert "analysis.ipynb" in body and "cell" in body


def test_footer_lists_each_recipient_reason_and_the_route() -> None:
    text, html = parts(render.render_alert(make_alert(), SENDER, now=NOW))
    footer = text[text.index("Why you got this email"):]
    assert "bob@example.org: last touched shop/cart.py:7" in footer
    assert "carol@example.net: watches shop/" in footer
    assert "shop/cart.py:7 is the innermost line of the repository" in footer
    html_footer = html[html.index("Why you got this email"):]
    assert "<li>carol@example.net: watches shop/</li>" in html_footer


def test_links_carry_the_error_identity_and_parse_back() -> None:
    alert = make_alert()
    text, html = parts(render.render_alert(alert, SENDER, now=NOW))
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
    assert set(text_links) == set(hrefs)
    # The line offered for a fixing commit's message names this very error.
    [fixes_line] = [line for line in text.splitlines() if line.startswith("Fixes: ")]
    assert error_link(fixes_line.split(" ", 1)[1]) == alert.route.key
    assert "Fixes: http://flawless.example.com:8080/view_traceback?" in html


def test_links_of_an_unblamable_error_use_the_innermost_line() -> None:
    _, html = parts(render.render_alert(make_alert(blamed=False), SENDER, now=NOW))
    query = parse_qs(urlsplit(html_links(html)[0]).query)
    assert query["filename"] == ["requests/api.py"] and query["line_number"] == ["59"]


def test_note_is_plain_text_to_its_recipients() -> None:
    note = reparse(render.render_note("flawless: a rule file is broken",
                                    ["known_errors.yaml:3: unknown key 'foo'"],
                                    ["ops@example.com"], SENDER))
    assert note["Subject"] == "flawless: a rule file is broken"
    assert note["To"] == "ops@example.com" and note["From"] == SENDER
    assert note.get_content_type() == "text/plain"
    assert note["Date"] and note["Message-ID"].endswith("@example.com>")
    assert "known_errors.yaml:3: unknown key 'foo'" in note.get_content()


# -- injection --------------------------------------------------------------------------------


def hostile_alert() -> render.Alert:
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
    return render.Alert(report, route, blame, decision, 1, NOW, NOW, "http://flawless.example.com")


def test_report_markup_is_escaped_in_the_html_part() -> None:
    text, html = parts(render.render_alert(hostile_alert(), SENDER, now=NOW))
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
    message = render.render_alert(replace(alert, route=route, decision=decision),
                                "flawless@example.com\nX-Injected: sender", now=NOW)
    parsed = reparse(message)
    assert set(parsed.keys()) == {"Subject", "From", "To", "Date", "Message-ID",
                                  "Auto-Submitted", "MIME-Version", "Content-Type"}
    assert parsed["Subject"] == "ValueError in add_item (shop/cart.py X-Injected: path:7) " \
                                "on web-3 Bcc: evil@example.com"
    raw_headers = render.message_bytes(message).split(b"\r\n\r\n", 1)[0]
    assert not any(line.startswith((b"Bcc", b"X-Injected")) for line in raw_headers.split(b"\r\n"))


def test_subject_is_bounded_and_free_of_control_characters() -> None:
    message = reparse(render.render_alert(make_alert(hostname="h\x00\x1b[31m\u2028" + "x" * 5000),
                                        SENDER, now=NOW))
    subject = message["Subject"]
    assert len(subject) <= render.MAX_SUBJECT_CHARS
    assert subject.startswith("ValueError in add_item (shop/cart.py:7) on h [31m x")
    assert all(ord(char) >= 32 and char != "\u2028" for char in subject)


# -- delivery ---------------------------------------------------------------------------------




# -- notebooks --------------------------------------------------------------------------------

NOTEBOOK = "notebooks/analysis.ipynb"


def notebook_alert(line: Optional[int] = 3) -> render.Alert:
    """Bob's cell 7 of analysis.ipynb divides by zero; ``line`` None: it has unsaved edits."""
    cell = NotebookCell(line=3, notebook=f"~/proj/{NOTEBOOK}", id="f426cbb7",
                        execution_count=7, line_hash="aee756cf6175548f")
    calling = replace(cell, line=4, id="0a1b2c3d", line_hash="0123456789abcdef")
    frames = (Frame("<ipykernel>/12.py", 2, "<module>", "", None, calling),
              Frame("<ipykernel>/11.py", 3, "ratio", "", None, cell))
    alert = make_alert()
    blame = replace(alert.blame, path=NOTEBOOK, line_number=56, cell=CellBlame(
        position=5, cell_id="f426cbb7", line=line, by_id=True, checked=True))
    route = replace(alert.route, frames=tuple(RoutedFrame(frame, NOTEBOOK, NOTEBOOK, True)
                                              for frame in frames), blamed_index=1,
                    key=ErrorKey(NOTEBOOK, "cell f426cbb7", "line_hash:aee756cf6175548f"))
    return replace(alert, report=replace(alert.report, traceback=frames), route=route,
                   blame=blame)


def test_a_notebook_frame_is_shown_by_notebook_cell_and_line() -> None:
    message = render.render_alert(notebook_alert(), SENDER, now=NOW)
    assert message["Subject"] == (f"ValueError in ratio ({NOTEBOOK}, cell 7 (id f426cbb7), "
                                  "line 3) on web-3")
    text, html = parts(message)
    assert ">> analysis.ipynb, cell 7 (id f426cbb7), line 3, in ratio\n" in text
    assert "   analysis.ipynb, cell 7 (id 0a1b2c3d), line 4, in <module>\n" in text
    assert "ipykernel" not in text and "ipykernel" not in html
    assert "<b>analysis.ipynb, cell 7 (id f426cbb7), line 3</b>, in <b>ratio</b>" in html
    assert "Blamed commit 3f786850e387 by Bob Builder" in text
    note = (f"notebook cell found by its id: the 5th cell (id f426cbb7) of {NOTEBOOK} at "
            "89e6c98d9288; its line 3 is the line raised (same hash); line 56 of the file")
    assert note in text and note in html
    query = parse_qs(urlsplit(html_links(html)[0]).query)
    assert (query["function_name"], query["line_number"], query["text"]) == (
        ["cell f426cbb7"], ["3"], ["line_hash:aee756cf6175548f"])


def test_a_cell_with_unsaved_edits_names_its_last_change_not_a_blamed_line() -> None:
    text, html = parts(render.render_alert(notebook_alert(line=None), SENDER, now=NOW))
    assert "No line blamed; the cell's last change, commit 3f786850e387 by Bob" in text
    assert "Blamed commit" not in text and "Blamed commit" not in html
    assert "unsaved edits, no line blamed: line 3 of the cell as it ran is not in the 5th " \
           f"cell (id f426cbb7) of {NOTEBOOK}" in " ".join(text.split())


def test_a_request_tags_user_and_level_are_shown_in_both_alternatives() -> None:
    alert = make_alert(request=RequestInfo("POST", "https://shop.example/cart/7?coupon",
                                           "/cart/<int:id>", {"User-Agent": "curl/8"}),
                       tags={"component": "billing"}, user_id="42", level="warning")
    text, html = parts(render.render_alert(alert, SENDER, now=NOW))
    for body in (text, html):
        assert "POST https://shop.example/cart/7?coupon" in body and "/cart/&lt;int:id&gt;" \
            in body.replace("/cart/<int:id>", "/cart/&lt;int:id&gt;")
        assert "curl/8" in body and "billing" in body and "42" in body and "Warning" in body
    subject = render.render_alert(alert, SENDER, now=NOW)["Subject"]
    assert subject == "Warning: ValueError in add_item (shop/cart.py:7) on web-3"


def test_a_message_is_named_by_its_level_and_text() -> None:
    alert = make_alert(exception_type="message", exception_message="cache  miss\nstorm",
                       level="info")
    subject = render.render_alert(alert, SENDER, now=NOW)["Subject"]
    assert subject == "Info: cache miss storm (shop/cart.py:7) on web-3"
