"""Fixtures shared by every test: real git repositories and a real SMTP server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.gitrepo import GitRepo, shop_repo  # noqa: E402
from support.smtp import SmtpSink  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--soak``: run the long variants of the robustness suite."""
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the long soak variants of tests/robustness")


@pytest.fixture
def shop(tmp_path: Path) -> GitRepo:
    """A real git repository of a small shop application with two authors."""
    return shop_repo(tmp_path / "shop-repo")


@pytest.fixture
def smtp_sink():
    """A real SMTP server on 127.0.0.1."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()
