"""Open the database a configuration names: SQLite in ``data_dir_path``, or PostgreSQL."""

from __future__ import annotations

import os
from typing import Optional

from flawless.config import Config
from flawless.server.storage.interface import Storage
from flawless.server.storage.records import StorageUnavailable

DATABASE_FILE = "flawless.sqlite3"


def open_storage(config: Config, server_id: Optional[str] = None,
                 connections: int = 6) -> Storage:
    """The storage of ``config`` (migrated to this flawless's schema); ``connections``
    bounds a PostgreSQL server's connections. Raises StorageUnavailable with the reason."""
    if config.storage == "postgresql":
        try:
            from flawless.server.storage.postgresql import PostgresStorage
        except ImportError as error:
            raise StorageUnavailable(f"storage = postgresql needs psycopg 3 ({error}): "
                                     "pip install 'flawless[postgresql]'") from None
        return PostgresStorage(config.database_url, server_id, pool_size=connections,
                               lease_seconds=config.outbox_lease_seconds)
    from flawless.server.storage.sqlite import SqliteStorage

    os.makedirs(config.data_dir_path, exist_ok=True)
    return SqliteStorage(os.path.join(config.data_dir_path, DATABASE_FILE), server_id,
                         lease_seconds=config.outbox_lease_seconds,
                         min_free_bytes=config.min_free_disk_bytes)
