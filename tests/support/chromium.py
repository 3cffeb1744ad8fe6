"""Debian's chromium, headless, driven by Playwright for Python (no browser is downloaded)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NOT_INSTALLED = "Debian's chromium is not installed"


def have_chromium() -> bool:
    """Whether Debian's chromium is there."""
    return Path(CHROMIUM).exists()


@contextmanager
def chromium(playwright: Any) -> Iterator[Any]:
    """A headless Chromium (``playwright`` is the ``playwright.sync_api`` module)."""
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
