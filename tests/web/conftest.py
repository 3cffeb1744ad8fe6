"""A headless Chromium per test module, and a fresh page (its own context) per test."""

from __future__ import annotations

import pytest

from support.chromium import chromium


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with chromium(playwright) as launched:
        yield launched


@pytest.fixture
def page(browser):
    """A page whose dialogs (an injected ``alert``) are dismissed and kept in ``dialogs``."""
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    opened.dialogs = []
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message),
                                        dialog.dismiss()))
    yield opened
    context.close()
