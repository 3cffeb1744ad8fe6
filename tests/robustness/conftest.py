"""Options of the robustness suite: short by default, long soak runs on request.

``--soak`` (defined in tests/conftest.py) or ``FLAWLESS_SOAK=1`` in the environment.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> bool:
    """True when the long variants were asked for (``--soak`` or ``FLAWLESS_SOAK=1``)."""
    option = request.config.getoption("--soak", default=False)
    return bool(option) or os.environ.get("FLAWLESS_SOAK", "") not in ("", "0")
