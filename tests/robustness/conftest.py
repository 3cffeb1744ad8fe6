"""Options of the robustness suite: short by default, long soak runs on request.

``--soak`` works when pytest is pointed at this directory (its conftest is then loaded at
start); ``FLAWLESS_SOAK=1`` in the environment works however the suite is started.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--soak``: run the long variants of the load and fault tests."""
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the long soak variants of tests/robustness")


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> bool:
    """True when the long variants were asked for (``--soak`` or ``FLAWLESS_SOAK=1``)."""
    option = request.config.getoption("--soak", default=False)
    return bool(option) or os.environ.get("FLAWLESS_SOAK", "") not in ("", "0")
