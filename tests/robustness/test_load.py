"""Load: ten client processes at full speed; every acknowledged occurrence is counted and
the dashboard and /check_health stay responsive meanwhile."""

from __future__ import annotations

import json
import time

from support.server import start_server

from .common import get_page, loader_results, start_loaders, stored_total, summed

CLIENTS = 10
FUNCTIONS = [f"load_{index:02d}" for index in range(20)]
SLOWEST_PAGE_SECONDS = 3.0


def test_ten_clients_at_full_speed(tmp_path, shop, soak, backend_options):
    seconds = 60 if soak else 8
    server = start_server(tmp_path / "server", repo_dir=shop.path, report_error_threshold=10**6,
                          rate_limit_per_key=0, rate_limit_per_address=0, **backend_options)
    loaders = start_loaders(server, CLIENTS, seconds, FUNCTIONS, shop.head())
    try:
        slowest = 0.0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for path in ("/check_health", "/"):
                started = time.monotonic()
                status, text = get_page(server.web_url + path, timeout=SLOWEST_PAGE_SECONDS * 2)
                slowest = max(slowest, time.monotonic() - started)
                assert status == 200, (path, status)
            assert json.loads(get_page(server.web_url + "/check_health")[1])["status"] == "ok"
            time.sleep(0.5)
        results = loader_results(loaders)
        acked, uncertain = summed(results, "acked"), summed(results, "uncertain")
        assert uncertain == {}, "a request went unanswered without any fault"
        assert server.wait_until(lambda: server.inbox_depth() == 0, timeout=120)
        assert stored_total(server) == sum(acked.values())
        assert dict(server.query("SELECT function_name, count FROM errors")) == acked
        assert slowest < SLOWEST_PAGE_SECONDS, slowest
        assert sum(acked.values()) > 1000 * seconds / 15, "the load was not much of a load"
    finally:
        for loader in loaders:
            if loader.poll() is None:
                loader.kill()
        server.stop()
