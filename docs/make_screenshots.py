"""Regenerate docs/screenshots/leaderboard.png and docs/screenshots/traceback.png.

    python docs/make_screenshots.py

Starts a real flawless server on a small shop repository with three authors, sends it real
reports over JSON-RPC, and photographs the pages in Debian's headless Chromium. Reports are
counted on the day they arrive, so to show what a few weeks of history look like, earlier
days' occurrences are added to the store before the pictures are taken.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402

from flawless.server.core.model import ErrorKey  # noqa: E402
from flawless.server.storage.sqlite import SqliteStorage  # noqa: E402
from support.gitrepo import CAROL, GitRepo, shop_repo  # noqa: E402
from support.server import FlawlessProcess, start_server  # noqa: E402

OUTPUT = HERE / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAYMENTS = '''\
RATES = {"EUR": 1.0, "USD": 1.08}


def charge(card, amount, currency):
    rate = RATES[currency]
    return card.debit(round(amount * rate, 2))
'''


def frame(repo: GitRepo, path: str, line: int, function: str, source: str,
          **local: str) -> dict:
    return {"filename": str(repo.path / path), "line_number": line, "function_name": function,
            "text": source, "frame_locals": local or None}


def reports(repo: GitRepo) -> list[dict]:
    """Realistic reports from the shop, with how many occurrences each stands for."""
    view = frame(repo, "shop/pricing.py", 8, "checkout", "return cart.total()",
                 prices="[]", cart="<shop.cart.Cart object at 0x7f3a>")
    return [
        {"exception_type": "builtins.ZeroDivisionError", "exception_message": "division by zero",
         "hostname": "web-3", "revision": repo.head(), "error_count": 41,
         "additional_info": "GET /cart/summary?user=1842",
         "traceback": [view, frame(repo, "shop/cart.py", 14, "average",
                                   "return self.total() / len(self.items)",
                                   self="<shop.cart.Cart object at 0x7f3a>")]},
        {"exception_type": "builtins.TypeError", "hostname": "web-1", "error_count": 17,
         "exception_message": "unsupported operand type(s) for +: 'int' and 'str'",
         "traceback": [frame(repo, "shop/cart.py", 11, "total",
                             "return sum(price for _, price in self.items)")]},
        {"exception_type": "builtins.ValueError", "hostname": "worker-2", "error_count": 9,
         "exception_message": "invalid literal for int() with base 10: 'twelve'",
         "traceback": [frame(repo, "shop/pricing.py", 12, "parse_price", "return int(text)",
                             text="'twelve'")]},
        {"exception_type": "builtins.KeyError", "exception_message": "'CHF'",
         "hostname": "web-2", "error_count": 6,
         "traceback": [frame(repo, "shop/payments.py", 5, "charge", "rate = RATES[currency]",
                             currency="'CHF'", amount="19.9")]},
        {"exception_type": "builtins.ValueError", "exception_message": "negative price",
         "hostname": "web-1", "error_count": 3,
         "traceback": [frame(repo, "shop/cart.py", 6, "add_item",
                             'raise ValueError("negative price")', price="-5")]},
        {"exception_type": "requests.exceptions.ConnectionError", "hostname": "worker-1",
         "exception_message": "HTTPSConnectionPool(host='rates.example.com', port=443): "
                              "Max retries exceeded", "error_count": 2,
         "traceback": [frame(repo, "shop/rates.py", 3, "refresh", "requests.get(URL)"),
                       {"filename": "/usr/lib/python3/dist-packages/requests/adapters.py",
                        "line_number": 519, "function_name": "send",
                        "text": "raise ConnectionError(e, request=request)"}]},
    ]


def add_history(server: FlawlessProcess) -> None:
    """Spread earlier occurrences of every error over the past five weeks."""
    storage = SqliteStorage(str(server.data_dir / "flawless.sqlite3"))
    picker = random.Random(7)
    now = time.time()
    keys = [ErrorKey(*row) for row in server.query(
        "SELECT filename, function_name, text FROM errors ORDER BY count DESC")]
    for rank, key in enumerate(keys):
        days = sorted(picker.sample(range(1, 36), max(2, 14 - 3 * rank)), reverse=True)
        record = storage.find_error(key)
        assert record is not None
        with storage.transaction() as transaction:
            added = 0
            for day in days:
                occurrences = picker.randint(1, max(2, 9 - 2 * rank))
                transaction.count_occurrences(record.error_id, now - day * 86400, occurrences)
                added += occurrences
            transaction.save_error(replace(record, count=record.count + added,
                                           first_seen=now - days[0] * 86400))


def main() -> None:
    """Start a server, feed it, and take the two pictures."""
    OUTPUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        repo = shop_repo(Path(directory) / "shop")
        repo.commit(CAROL, {"shop/payments.py": PAYMENTS}, "Charge cards in their currency",
                    date="2026-11-05T10:00:00+00:00")
        server = start_server(Path(directory) / "server", repo_dir=repo.path,
                              report_error_threshold=5)
        try:
            for report in reports(repo):
                server.record(report)
            server.wait_until(lambda: server.inbox_depth() == 0 and server.query(
                "SELECT COUNT(*) FROM errors")[0][0] == 6)
            add_history(server)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server.web_url + "/")
                page.screenshot(path=str(OUTPUT / "leaderboard.png"), full_page=True)
                page.click("section.developer >> nth=0 >> text=Traceback >> nth=0")
                page.screenshot(path=str(OUTPUT / "traceback.png"), full_page=True)
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
