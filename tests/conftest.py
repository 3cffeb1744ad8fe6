"""Fixtures shared by every test: real git repositories, a real SMTP server, and each
storage backend (SQLite in a temporary directory, PostgreSQL in a throwaway cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.gitrepo import GitRepo, shop_repo  # noqa: E402
from support.pgcluster import REQUIRE_VARIABLE, PostgresCluster, server_binaries  # noqa: E402
from support.smtp import SmtpSink  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole run. Its tests are skipped, with the reason, where
    the server binaries are absent, unless FLAWLESS_REQUIRE_POSTGRESQL is set (as CI does):
    then they fail."""
    binaries = server_binaries()
    if binaries is None:
        reason = "PostgreSQL's server binaries are absent (apt-get install postgresql)"
        if os.environ.get(REQUIRE_VARIABLE, "") not in ("", "0"):
            pytest.fail(f"{reason}, and {REQUIRE_VARIABLE} requires them")
        pytest.skip(reason)
    cluster = PostgresCluster(binaries).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new, empty schema (quicker to make than a database, and all that
    flawless needs), dropped after the test."""
    url = postgres_cluster.create_schema()
    yield url
    postgres_cluster.drop_schema(url)


@pytest.fixture(params=BACKENDS)
def backend_options(request: pytest.FixtureRequest) -> dict[str, str]:
    """The server options of each storage backend (a new database for PostgreSQL)."""
    if request.param == "sqlite":
        return {}
    return {"storage": "postgresql",
            "database_url": request.getfixturevalue("postgres_url")}


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path
               ) -> Iterator[Callable[..., Any]]:
    """Opens the storage of one database of each backend; each call is another server
    (``server_id``) sharing it. Every storage opened is closed after the test."""
    from flawless.server.storage.sqlite import SqliteStorage

    opened: list[Any] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""

    def open_one(server_id: Optional[str] = None) -> Any:
        if url:
            from flawless.server.storage.postgresql import PostgresStorage

            store: Any = PostgresStorage(url, server_id, pool_size=4)
        else:
            store = SqliteStorage(str(tmp_path / "flawless.sqlite3"), server_id)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
