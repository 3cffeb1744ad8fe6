"""A throwaway PostgreSQL cluster in a temporary directory, for tests and benchmarks.

Debian's server binaries (``/usr/lib/postgresql/VERSION/bin``) run as the ``postgres`` user
when we are root (``initdb`` refuses root), with trust authentication, no TCP port (a Unix
socket in the cluster's directory) and ``fsync=off``: nothing in it needs to survive the
machine, only the processes.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Optional

REQUIRE_VARIABLE = "FLAWLESS_REQUIRE_POSTGRESQL"
ADMIN_DATABASE = "postgres"


def server_binaries() -> Optional[Path]:
    """The directory of ``initdb`` and ``pg_ctl`` (the newest version installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parent.parent.name)
                   if Path(path).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """One cluster: :meth:`start` it, make databases with :meth:`create_database`, and
    :meth:`stop` it (which removes every file)."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.directory = Path(tempfile.mkdtemp(prefix="flawless-pg-"))
        self.data = self.directory / "data"
        self._as_postgres = os.geteuid() == 0
        self._created = 0
        self._options = ""

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        result = subprocess.run(prefix + list(command), capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            log = self.directory / "server.log"
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout}{result.stderr}"
                               + (log.read_text() if log.exists() else ""))

    def start(self, max_connections: int = 200, durable: bool = False) -> "PostgresCluster":
        """Create the cluster and start its server; return self. A ``durable`` one syncs
        its commits to disk as a real one does (for benchmarks); by default it does not."""
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run(str(self.binaries / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        self._options = (f"-k {self.directory} -c listen_addresses='' "
                         f"-c max_connections={max_connections} -c shared_buffers=64MB"
                         + ("" if durable else " -c fsync=off -c full_page_writes=off"))
        self.resume()
        return self

    def pause(self) -> None:
        """Stop the server (as an operator would, ending every session); keep its data."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                  "stop")

    def resume(self) -> None:
        """Start the server (again)."""
        self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", self._options,
                  "-l", str(self.directory / "server.log"), "-w", "-t", "60", "start")

    def url(self, database: str, schema: str = "") -> str:
        """The database_url of ``database`` in this cluster (its tables in ``schema``)."""
        options = "&options=" + urllib.parse.quote(f"-csearch_path={schema}") if schema else ""
        return f"postgresql://postgres@/{database}?host={self.directory}{options}"

    def _admin(self, statement: str, database: str = ADMIN_DATABASE) -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            connection.execute(statement)

    def create_database(self, prefix: str = "flawless") -> str:
        """A new empty database; return its URL."""
        self._created += 1
        name = f"{prefix}_{os.getpid()}_{self._created}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, closing whatever still uses it."""
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def create_schema(self, database: str = ADMIN_DATABASE) -> str:
        """A new empty schema in ``database`` (far quicker to make than a database); return
        the URL whose tables live in it."""
        self._created += 1
        name = f"test_{os.getpid()}_{self._created}"
        self._admin(f"CREATE SCHEMA {name}", database)
        return self.url(database, name)

    def drop_schema(self, url: str) -> None:
        """Drop the schema of a URL made by :meth:`create_schema`, with its tables (and end
        every session of its database: tests run one at a time)."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        name = query["options"][0].split("=", 1)[1]
        database = urllib.parse.urlsplit(url).path.lstrip("/")
        # whatever a test left connected (a claim left open holds its rows' locks) goes first
        self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid()", database)
        self._admin(f"DROP SCHEMA IF EXISTS {name} CASCADE", database)

    def server_pids(self) -> list[int]:
        """The server's processes (the postmaster and its children)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                                  text=True).stdout.split()
        return [postmaster] + [int(pid) for pid in children]

    def stop(self) -> None:
        """Stop the server at once and remove the cluster."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m",
                          "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
