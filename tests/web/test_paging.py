"""Every list is paged: at most page_size entries, totals from kept counts, a link to the
next page; a link to an old week shows that week's occurrence; /check_health never waits
behind the pages' reads."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from flawless.server.threads import InlineRunner
from flawless.server.web.health import HealthPage
from flawless.server.web.root import build_web_root
from support.http import Exchange, raw_request
from support.runners import ManualRunner
from twisted.web import server

from .support import DAY, NOW, Client, DashboardApp, record, report, store_error

BOB = ("Bob Builder", "bob@example.org")


@pytest.fixture
def app(tmp_path: Path) -> DashboardApp:
    app = DashboardApp(tmp_path, page_size=10)
    for number in range(23):   # Alice: 23 errors, each seen number + 1 times this week
        store_error(app.store, record(function=f"f{number:02d}"), [NOW - 60] * (number + 1))
    store_error(app.store, record(function="bobs", author=BOB), [NOW - 60] * 100)
    store_error(app.store, record(function="old", text="x = 1"), [NOW - 14 * DAY])
    return app


def rows(page_text: str) -> list[str]:
    return re.findall(r'<td class="where">\s*<code>[^<]*</code>\s*<span class="sub">in '
                      r'<code>([^<]*)</code>', page_text)


def test_the_week_comes_in_pages_of_page_size_most_frequent_first(app):
    client = Client(app)
    first = client.get("/")
    # Bob's one error is the most frequent, Alice's 23 hold more occurrences together.
    assert rows(first.text) == [f"f{n:02d}" for n in range(22, 13, -1)] + ["bobs"]
    # The totals are the whole week's, not the page's.
    assert "<strong>376</strong> occurrences of\n  <strong>24</strong> distinct errors" in \
        first.text
    assert "Page 1 of 3" in first.text and 'rel="next"' in first.text
    third = client.get("/get_weekly_error_report", timestamp=int(NOW), page=3)
    assert rows(third.text) == ["f03", "f02", "f01", "f00"]
    assert "Page 3 of 3" in third.text and "Next page" not in third.text
    assert "9 of 23 distinct errors this week on this page" in first.text
    beyond = client.get("/get_weekly_error_report", page=4)
    assert beyond.status == 200 and "There is no page 4" in beyond.text
    assert client.get("/", page="0").status == 400


def test_the_api_pages_the_week_too(app):
    client = Client(app)
    first = json.loads(client.get("/api/weekly_report").body)
    assert (first["page"], first["pages"], first["next_page"], first["page_size"]) == (
        1, 3, 2, 10)
    assert (first["occurrences"], first["distinct_errors"]) == (376, 24)
    assert sum(len(developer["errors"]) for developer in first["developers"]) == 10
    alice = next(d for d in first["developers"] if d["email"] == "alice@example.com")
    assert (alice["total"], alice["distinct_errors"], len(alice["errors"])) == (276, 23, 9)
    last = json.loads(client.get("/api/weekly_report", page=3).body)
    assert last["next_page"] is None
    assert sum(len(developer["errors"]) for developer in last["developers"]) == 4


def test_a_filtered_week_is_paged_as_well(app):
    client = Client(app)
    page = client.get("/", q="F1")
    assert rows(page.text) == [f"f{n}" for n in range(19, 9, -1)] and "Next page" not in page.text
    page = client.get("/", q="f")
    assert rows(page.text) == [f"f{n:02d}" for n in range(22, 12, -1)]
    following = re.search(r'rel="next" href="([^"]*)"', page.text).group(1).replace("&amp;", "&")
    assert "q=f" in following and "page=2" in following
    following = re.search(r'rel="next" href="([^"]*)"', client.get(following).text).group(1)
    assert rows(client.get(following.replace("&amp;", "&")).text) == ["f02", "f01", "f00"]


def test_the_developer_page_is_paged(app):
    client = Client(app)
    first = client.get("/developer", email="alice@example.com")
    assert len(rows(first.text)) == 10 and 'rel="next"' in first.text
    third = client.get("/developer", email="alice@example.com", page=3)
    assert len(rows(third.text)) == 4 and "Next page" not in third.text
    api = json.loads(client.get("/api/developer", email="alice@example.com", page=2).body)
    assert len(api["errors"]) == 10 and api["next_page"] == 3
    assert api["weeks"][0] == {"week": "2026-11-09", "count": 276, "distinct_errors": 23}


def test_a_link_to_an_old_week_shows_that_weeks_occurrence(tmp_path):
    app = DashboardApp(tmp_path)
    first = record(last_report=report(message="raised in the first week"))
    store_error(app.store, first, [NOW - 14 * DAY, NOW - 13 * DAY])
    store_error(app.store, replace(first, last_report=report(message="raised this week")),
                [NOW - 60])
    client = Client(app)
    params = {"filename": "shop/cart.py", "function_name": "total", "line_number": 12,
              "text": "return sum(prices)"}
    old = client.get("/view_traceback", timestamp=int(NOW - 13 * DAY), **params)
    assert "raised in the first week" in old.text and "raised this week" not in old.text
    assert "Last occurrence in the week of 2026-10-26" in old.text
    latest = client.get("/view_traceback", timestamp=int(NOW), **params)
    assert "raised this week" in latest.text and "raised in the first week" not in latest.text
    assert "raised this week" in client.get("/view_traceback", **params).text
    quiet = client.get("/view_traceback", timestamp=int(NOW - 7 * DAY), **params)
    assert "none in the week of 2026-11-02" in quiet.text
    api = json.loads(client.get("/api/error", timestamp=int(NOW - 13 * DAY), **params).body)
    assert api["report"]["exception_message"] == "raised in the first week"
    assert (api["week"], api["week_count"], api["report_of_week"]) == ("2026-10-26", 2, True)


def test_check_health_is_answered_while_page_reads_wait(app):
    """Page reads wait in their pool (here: never run); /check_health has its own."""
    pages_pool = ManualRunner()
    parts = replace(app.parts(), reader=pages_pool,
                    health=HealthPage(app.health, InlineRunner(), []))
    site = server.Site(build_web_root(parts), reactor=app.reactor)
    waiting = [Exchange(site).send(raw_request("GET", path)) for path in
               ("/", "/api/weekly_report", "/developer?email=alice%40example.com")]
    health = Exchange(site).send(raw_request("GET", "/check_health"))
    assert health.response().status == 200 and json.loads(health.response().body)["status"] == "ok"
    assert not any(exchange.answered() for exchange in waiting)
    pages_pool.run_all()
    assert all(exchange.response().status == 200 for exchange in waiting)
