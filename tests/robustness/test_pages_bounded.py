"""Pages that do not grow with the data, against the real server: with 20,000 distinct
errors in one week every page and API list holds page_size entries (a week of 200,000 once
made / 151 MB), deep pages included, and /check_health answers beside them."""

from __future__ import annotations

import json
import re
import time

from flawless.server.storage.sqlite import SqliteStorage
from support.server import start_server

from .common import errors_of_one_week, get_page

ERRORS = 20_000
PAGE_BYTES = 400_000   # a page of 100 errors is about 150 kB


def test_every_list_holds_one_page_however_many_errors_a_week_has(tmp_path):
    server = start_server(tmp_path, report_error_threshold=10**6)
    try:
        now = time.time()
        errors_of_one_week(SqliteStorage(str(server.data_dir / "flawless.sqlite3")), ERRORS,
                           now)
        week = f"{server.web_url}/get_weekly_error_report?timestamp={int(now)}"
        status, page = get_page(week)
        assert status == 200 and len(page.encode()) < PAGE_BYTES
        assert page.count('class="button small" href="/view_traceback') == 100
        assert f"<strong>{ERRORS}</strong> distinct errors" in page
        assert "Page 1 of 200" in page
        status, deep = get_page(week + "&page=150")
        assert status == 200 and deep.count('href="/view_traceback') == 100
        status, api = get_page(f"{server.web_url}/api/weekly_report?timestamp={int(now)}"
                               "&page=200")
        last = json.loads(api)
        assert (last["pages"], last["next_page"], last["distinct_errors"]) == (200, None, ERRORS)
        assert sum(len(developer["errors"]) for developer in last["developers"]) == 100
        status, developer = get_page(server.web_url + "/developer?email=dev7%40example.com")
        assert status == 200 and len(developer.encode()) < PAGE_BYTES
        assert len(re.findall(r'href="/view_traceback', developer)) == 100
        status, health = get_page(server.web_url + "/check_health")
        assert status == 200 and json.loads(health)["status"] == "ok"
    finally:
        server.stop()
