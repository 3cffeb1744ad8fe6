"""``flawless migrate``: a single server's SQLite data, copied into PostgreSQL."""

from __future__ import annotations

from flawless.server.storage.postgresql import PostgresStorage
from flawless.server.storage.sqlite import SqliteStorage


def copy_sqlite_to_postgresql(path: str, url: str) -> dict[str, int]:
    """Copy every table of the SQLite file at ``path`` (brought to this flawless's schema
    first, as a start would) into the empty PostgreSQL database at ``url`` (migrated
    likewise), all or nothing; return the rows copied per table."""
    source = SqliteStorage(path)
    target = PostgresStorage(url, pool_size=2)
    try:
        return target.load(source.tables())
    finally:
        target.close()
