"""The read-only pages and the JSON API over a real store, through twisted.web."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from flawless.report import ChainedException, Frame, NotebookCell, RequestInfo
from flawless.server.core.channels import error_fingerprint
from flawless.server.core.model import ErrorRecord
from flawless.server.core.redaction import redact_data
from flawless.server.storage.records import IssueLink
from flawless.server.web.views import daily_chart, leaderboard

from support.outbox import entry

from .support import DAY, NOW, Client, DashboardApp, record, report, store_error

BOB = ("Bob Builder", "bob@example.org")


@pytest.fixture
def app(tmp_path: Path) -> DashboardApp:
    return DashboardApp(tmp_path)


@pytest.fixture
def client(app: DashboardApp) -> Client:
    return Client(app)


def test_leaderboard_orders_developers_by_occurrences_and_keeps_the_unblamed():
    alice_a = (record(), 2)
    alice_b = (record(function="add", text="self.items.append(item)"), 1)
    bob = (record(function="average", author=BOB), 5)
    nobody = (record(function="main", author=None), 4)
    groups = leaderboard([alice_a, alice_b, bob, nobody], {})
    assert [(group.email, group.total) for group in groups] == [
        ("bob@example.org", 5), (None, 4), ("alice@example.com", 3)]
    assert [pair[1] for pair in groups[2].errors] == [2, 1]
    # The week's totals order the developers, not what a page happens to hold of them.
    groups = leaderboard([alice_a, bob], {"alice@example.com": (40, 9), "bob@example.org": (5, 1)})
    assert [(group.email, group.total, group.errors_in_week) for group in groups] == [
        ("alice@example.com", 40, 9), ("bob@example.org", 5, 1)]


def test_weekly_page_groups_the_weeks_errors_by_blamed_developer(app, client):
    store_error(app.store, record(), [NOW - 3600, NOW - 7200])
    store_error(app.store, record(function="average", text="return total / len(items)",
                                  author=BOB, alerted_at=NOW - 50,
                                  recipients=("bob@example.org",)), [NOW - 100] * 5)
    store_error(app.store, record(function="old", text="x = 1"), [NOW - 14 * DAY])
    page = client.get("/")
    assert page.status == 200
    assert "Week of Monday, 9 November 2026" in page.text
    assert page.text.index("Bob Builder") < page.text.index("Alice Liddell")
    assert "/developer?email=bob%40example.org" in page.text
    assert "shop/cart.py:12" in page.text and "average" in page.text
    assert "sent</span>" in page.text
    # Errors of another week are not on this week's page.
    assert "<code>old</code>" not in page.text
    link = re.search(r'href="(/view_traceback\?[^"]+function_name=average[^"]*)"', page.text)
    assert link is not None
    assert client.get(link.group(1).replace("&amp;", "&")).status == 200


def test_weeks_are_navigated_by_timestamp_and_an_empty_week_says_so(app, client):
    store_error(app.store, record(function="old", text="x = 1"), [NOW - 14 * DAY])
    page = client.get("/get_weekly_error_report", timestamp=int(NOW - 14 * DAY))
    assert "Week of Monday, 26 October 2026" in page.text and "<code>old</code>" in page.text
    assert 'rel="next"' in page.text and 'rel="prev"' in page.text
    empty = client.get("/get_weekly_error_report", timestamp=int(NOW - 7 * DAY))
    assert empty.status == 200
    assert "No errors were reported in the week of 2026-11-02" in empty.text
    # The current week has no link to a future one.
    assert 'rel="next"' not in client.get("/").text


def test_known_errors_are_hidden_unless_asked_for(app, client):
    store_error(app.store, record(known=True), [NOW])
    assert "shop/cart.py:12" not in client.get("/").text
    shown = client.get("/get_weekly_error_report", include_known_errors="true")
    assert "shop/cart.py:12" in shown.text and "known</span>" in shown.text


def test_the_filter_box_narrows_the_week(app, client):
    store_error(app.store, record(), [NOW])
    store_error(app.store, record(function="average", author=BOB), [NOW])
    page = client.get("/", q="bob@")
    assert "Bob Builder" in page.text and "Alice Liddell" not in page.text
    assert "No error this week matches" in client.get("/", q="nothing-like-this").text


@pytest.mark.parametrize("query", [
    "timestamp=yesterday", "timestamp=-5", "timestamp=1e30", "include_known_errors=maybe",
    "timestamp=%ff"])
def test_garbage_parameters_give_a_400_page_not_a_traceback(client, query):
    page = client.request("GET", "/get_weekly_error_report?" + query)
    assert page.status == 400
    assert "Bad request" in page.text and "Traceback" not in page.text


@pytest.mark.parametrize("query", ["", "function_name=total&text=x", "filename=a.py",
                                   "filename=a.py&function_name=f&line_number=zero"])
def test_view_traceback_needs_its_parameters(client, query):
    page = client.request("GET", "/view_traceback?" + query)
    assert page.status == 400 and "parameter" in page.text


def test_view_traceback_shows_the_latest_occurrence_and_why_it_was_routed(app, client):
    error = store_error(app.store, record(alerted_at=NOW - 3000, recipients=(
        "alice@example.com",)), [NOW - 10 * DAY, NOW - 2 * DAY, NOW - 3600])
    page = client.get("/view_traceback", filename="shop/cart.py", function_name="total",
                      line_number=12, text="return sum(prices)", timestamp=int(NOW))
    assert page.status == 200
    text = page.text
    assert "builtins.TypeError" in text and "unsupported operand" in text
    assert '<dd class="big">3</dd>' in text
    assert "2026-11-01 12:00 UTC" in text and "2026-11-11 11:00 UTC" in text  # first, last
    assert "web-3" in text and "9fceb02d0ae5" in text                          # host, revision
    assert "3f2a9c1d8e7b" in text and "Sum prices in the cart" in text        # blamed commit
    assert "innermost frame in the repository" in text                        # explanation
    assert 'class="frame blamed"' in text and "/srv/app/shop/views.py" in text
    assert "sent 2026-11-11" in text
    # The chart has one bar per day with the right counts, and no external asset.
    assert text.count('<rect class="bar') == 56
    assert "2026-11-01: 1" in text and "2026-11-11: 1" in text
    assert "http://" not in text.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert error.error_id


def test_view_traceback_shows_the_chain_and_marks_the_line_it_began_on(app, client):
    cause = ChainedException("builtins.ValueError", "invalid literal: 'x'", (
        Frame("/srv/app/shop/cart.py", 30, "load", "return parse(text)"),
        Frame("/srv/app/shop/parse.py", 2, "parse", "return int(text)")))
    chained_report = replace(report("load", 32, "raise CartError(text) from err",
                                    exception_type="shop.CartError"), chained=(cause,))
    store_error(app.store, record("shop/parse.py", "parse", 2, "return int(text)",
                                  last_report=chained_report), [NOW - 60])
    text = client.get("/view_traceback", filename="shop/parse.py", function_name="parse",
                      line_number=2, text="return int(text)").text
    first = text.index("invalid literal: &#39;x&#39;")
    assert first < text.index("The above exception was the cause") < text.index(
        "shop.CartError") < text.rindex("raise CartError(text) from err")
    [blamed] = re.findall(r'<li class="frame blamed">.*?</li>', text, re.S)
    assert "/srv/app/shop/parse.py" in blamed and "return int(text)" in blamed


def test_view_traceback_shows_where_the_alerts_went_and_the_issue(app, client):
    error = store_error(app.store, record(), [NOW - 3600])
    with app.store.transaction() as transaction:
        sent = transaction.queue_entry(replace(entry("alice@example.com"),
                                               error_id=error.error_id), NOW - 3600)
        transaction.queue_entry(replace(entry("hooks.slack.com#0a1b2c3d4e5f", "slack"),
                                        error_id=error.error_id), NOW - 3600,
                                held_until=NOW)
        failing = transaction.queue_entry(replace(entry("acme/shop", "github"),
                                                  error_id=error.error_id), NOW - 3600)
    app.store.mark_sent(sent, NOW - 3500)
    app.store.mark_failed(failing, 2, NOW + 60, "GitHub acme/shop: HTTP 502 bad gateway")
    app.store.save_issue_links([IssueLink("github", "acme/shop", error_fingerprint(error.key),
                                          42, "https://github.test/acme/shop/issues/42")], NOW)
    page = client.get("/view_traceback", filename="shop/cart.py", function_name="total",
                      line_number=12, text="return sum(prices)")
    assert page.status == 200
    assert '<a class="button" href="https://github.test/acme/shop/issues/42">GitHub issue #42' \
        in page.text
    assert "sent 2026-11-11 11:01 UTC" in page.text
    assert "held back by the hourly bound until 2026-11-11 12:00 UTC" in page.text
    assert "not delivered yet (2 attempts): GitHub acme/shop: HTTP 502" in page.text
    api = client.get("/api/error", filename="shop/cart.py", function_name="total",
                     line_number=12, text="return sum(prices)")
    data = json.loads(api.body)
    assert [item["channel"] for item in data["deliveries"]] == ["github", "slack", "email"]
    assert data["issues"] == [{"channel": "github", "destination": "acme/shop", "number": 42,
                               "url": "https://github.test/acme/shop/issues/42"}]


def test_view_traceback_follows_an_old_link_by_line_number(app, client):
    store_error(app.store, record(text="return sum(p for p in prices)"), [NOW])
    page = client.get("/view_traceback", filename="shop/cart.py", function_name="total",
                      line_number=12, text="return sum(prices)")
    assert page.status == 200 and "return sum(p for p in prices)" in page.text
    missing = client.get("/view_traceback", filename="shop/other.py", function_name="f",
                         line_number=3, text="x")
    assert missing.status == 404 and "No error is recorded" in missing.text


def test_developer_page_lists_their_errors_across_weeks(app, client):
    store_error(app.store, record(), [NOW, NOW - 20 * DAY])
    store_error(app.store, record(function="add", text="append(item)"), [NOW - 40 * DAY])
    store_error(app.store, record(function="average", author=BOB), [NOW])
    page = client.get("/developer", email="ALICE@example.com")
    assert page.status == 200
    assert "Alice Liddell" in page.text
    assert "<code>total</code>" in page.text and "<code>add</code>" in page.text
    assert "<code>average</code>" not in page.text
    assert "2026-11-09" in page.text and "2026-10-19" in page.text and "2026-09-28" in page.text
    assert "No error has been blamed" in client.get("/developer", email="x@y.z").text
    assert client.get("/developer").status == 400


def test_every_string_of_a_hostile_report_renders_as_text(app, client):
    payload = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    hostile = report(function=payload, text=payload, exception_type=payload, message=payload,
                     hostname=payload, revision=payload, additional_info=payload,
                     context={payload: payload})
    hostile = replace(hostile, traceback=tuple(
        Frame(payload, 3, payload, payload, {payload: payload}) for _ in range(2)))
    store_error(app.store, record(filename=payload, function=payload, text=payload,
                                  author=(payload, payload + "@x.org"), exception_type=payload,
                                  commit_summary=payload, last_report=hostile,
                                  explanation=(payload,), recipients=(payload,),
                                  alerted_at=NOW), [NOW])
    pages = [client.get("/", q=""), client.get("/developer", email=payload + "@x.org"),
             client.get("/view_traceback", filename=payload, function_name=payload, text=payload,
                        line_number=3)]
    for page in pages:
        assert page.status == 200
        assert "<script>" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;" in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]


def test_check_health_reports_status_and_never_a_secret(tmp_path):
    app = DashboardApp(tmp_path, smtp_password="smtp-pass-123", admin_password="admin-456",
                       ingest_keys="key-789,key-abc",
                       repo_url="https://deploy:tok%2Fen@git.example.com/shop.git")
    app.health_extra = {"repository_error": "fetch https://deploy:tok%2Fen@git.example.com "
                                            "failed; password smtp-pass-123",
                        "rule_files": {"status": "ok", "problems": ["key-789 admin-456"]}}
    page = Client(app).get("/check_health")
    assert page.status == 200 and page.headers["content-type"].startswith("application/json")
    status = json.loads(page.body)
    assert status["status"] == "ok" and status["inbox_depth"] == 0
    assert status["outbox_depth"] == 0 and "uptime_seconds" in status
    for secret in ("smtp-pass-123", "admin-456", "key-789", "key-abc", "tok%2Fen", "deploy:"):
        assert secret not in page.text
    assert json.loads(Client(app).get("/api/health").body) == status


def test_redact_masks_url_credentials_in_nested_values():
    assert redact_data({"a": ["ssh://me:pw@host/x", 3, None]}, ["zzz"]) == {
        "a": ["ssh://***@host/x", 3, None]}


def test_daily_chart_has_one_bar_per_day_scaled_to_the_peak():
    chart = daily_chart([("2026-11-09", 4), ("2026-11-11", 2)], "2026-11-11", days=14)
    assert len(chart.bars) == 14 and chart.peak == 4
    by_day = {bar.day: bar for bar in chart.bars}
    assert by_day["2026-11-09"].height == 2 * by_day["2026-11-11"].height
    assert by_day["2026-11-10"].height == 0
    assert [label for _, label in chart.ticks] == ["Nov 2", "Nov 9"]


def test_the_api_serves_the_data_behind_the_pages(app, client):
    store_error(app.store, record(), [NOW, NOW - 3600])
    store_error(app.store, record(function="average", author=BOB), [NOW] * 3)
    week = json.loads(client.get("/api/weekly_report").body)
    assert week["week"] == "2026-11-09"
    assert [(d["email"], d["total"]) for d in week["developers"]] == [
        ("bob@example.org", 3), ("alice@example.com", 2)]
    error = week["developers"][1]["errors"][0]
    assert error["week_count"] == 2 and error["url"].startswith("/view_traceback?")
    detail = json.loads(client.get("/api/error", filename="shop/cart.py",
                                   function_name="total", text="return sum(prices)").body)
    assert detail["count"] == 2 and detail["daily_counts"] == [["2026-11-11", 2]]
    assert detail["report"]["traceback"][1]["function_name"] == "total"
    developer = json.loads(client.get("/api/developer", email="bob@example.org").body)
    assert developer["weeks"] == [{"week": "2026-11-09", "count": 3, "distinct_errors": 1}]
    bad = client.get("/api/weekly_report", timestamp="soon")
    assert bad.status == 400 and "timestamp" in json.loads(bad.body)["error"]
    assert "/api/error" in json.loads(client.get("/api/").body)["endpoints"]


def test_unknown_addresses_and_static_files(client):
    assert client.get("/nothing/here").status == 404
    css = client.get("/static/dashboard.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text and "@import" not in css.text
    assert client.get("/static/logo.svg").status == 200


def notebook_record(**changes) -> ErrorRecord:
    """Bob's line 3 of cell 7 of analysis.ipynb, called from line 4 of another cell."""
    cell = NotebookCell(line=3, notebook="~/proj/notebooks/analysis.ipynb", id="f426cbb7",
                        execution_count=7, line_hash="aee756cf6175548f")
    frames = (Frame("<ipykernel>/12.py", 2, "<module>", "", None,
                    replace(cell, line=4, id="0a1b2c3d", line_hash="0123456789abcdef")),
              Frame("<ipykernel>/11.py", 3, "ratio", "", None, cell))
    base = record("notebooks/analysis.ipynb", "cell f426cbb7", 3, "line_hash:aee756cf6175548f",
                  BOB)
    return replace(base, last_report=replace(base.last_report, traceback=frames), **changes)


def test_a_notebook_error_is_shown_by_notebook_cell_and_line(app, client):
    store_error(app.store, notebook_record(), [NOW])
    week = client.get("/").text
    assert "<code>notebooks/analysis.ipynb, cell 7 (id f426cbb7), line 3</code>" in week
    assert "in <code>ratio</code>" in week
    link = re.search(r'href="(/view_traceback\?[^"]+)"', week).group(1).replace("&amp;", "&")
    page = client.request("GET", link)
    assert page.status == 200
    assert ('<p class="location"><code>notebooks/analysis.ipynb, cell 7 (id f426cbb7), line '
            '3</code> in <code>ratio</code></p>') in page.text
    assert ('<div class="framehead"><code>analysis.ipynb, cell 7 (id f426cbb7), line 3</code>, '
            'in <code>ratio</code> <span class="badge">blamed</span>') in page.text
    assert "<code>analysis.ipynb, cell 7 (id 0a1b2c3d), line 4</code>, in <code>&lt;module&gt;"\
        in page.text
    assert "ipykernel" not in page.text
    developer = client.get("/developer", email="bob@example.org").text
    assert "<code>notebooks/analysis.ipynb, cell 7 (id f426cbb7), line 3</code>" in developer
    [error] = json.loads(client.get("/api/developer", email="bob@example.org").body)["errors"]
    assert error["where"] == "notebooks/analysis.ipynb, cell 7 (id f426cbb7), line 3"


def test_view_traceback_shows_the_request_tags_user_and_level(app, client):
    latest = report(request=RequestInfo("GET", "https://shop.example/cart?id", "/cart",
                                        {"Accept": "text/html"}),
                    tags={"tenant": "acme"}, user_id="u-77", level="warning")
    store_error(app.store, record(last_report=latest), [NOW - 60])
    page = client.get("/view_traceback", filename="shop/cart.py", function_name="total",
                      line_number=12, text="return sum(prices)")
    assert page.status == 200
    for shown in ("GET https://shop.example/cart?id", "/cart", "text/html", "tenant",
                  "acme", "u-77", ">warning<"):
        assert shown in page.text
