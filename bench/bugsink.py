"""Bugsink as a benchmark peer, reusable by any benchmark: ``with BugsinkServer() as peer``.

Bugsink (https://www.bugsink.com, ``pip install bugsink``) is a self-hosted tracker that
speaks the Sentry SDKs' protocol. It is installed into its own virtualenv,
``bench/.peers/bugsink``, and configured from its own ``singleserver`` template (what its
docs give for one server): SQLite (its default) for the data and for its task queue, the
web app under gunicorn and digestion in ``bugsink-runsnappea`` (4 worker threads, as the
template says). Changed from the template, each for a reason:

- ``PHONEHOME`` off, and nothing else that reaches out: only loopback traffic here.
- The quotas (at most 1,000 events per 5 minutes by default) raised out of the way: a
  benchmark that hits them measures the quota, not the server.
- Plain HTTP on 127.0.0.1 (no secure cookies: there is no TLS proxy in front).
- Mail to the quiet console backend, as in the template.

gunicorn runs ``min(cores, 4)`` workers, the number of Bugsink's own Docker configuration.
An event is *acknowledged* when its request is answered and *fully processed* once
digested (``projects_project.digested_event_count``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ensure_venv, free_port, stop_process  # noqa: E402

BUGSINK_VERSION = "2.6.2"
GUNICORN_WORKERS = min(os.cpu_count() or 1, 4)

OVERRIDES = '''
# -- the benchmark's changes to the singleserver template (see bench/bugsink.py) --
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
BUGSINK["BASE_URL"] = "http://127.0.0.1:{port}"
BUGSINK["PHONEHOME"] = False
for _name in ("MAX_EVENTS_PER_PROJECT_PER_5_MINUTES", "MAX_EVENTS_PER_PROJECT_PER_HOUR",
              "MAX_EVENTS_PER_PROJECT_PER_MONTH", "MAX_EVENTS_PER_5_MINUTES",
              "MAX_EVENTS_PER_HOUR", "MAX_EVENTS_PER_MONTH"):
    BUGSINK[_name] = 10 ** 9
'''

CREATE_PROJECT = '''
from teams.models import Team
from projects.models import Project
team, _ = Team.objects.get_or_create(name="bench")
project, _ = Project.objects.get_or_create(name="bench", slug="bench", team=team)
print(project.dsn)
'''


class BugsinkServer:
    """Bugsink on a loopback port: gunicorn and snappea, stopped on exit. ``dsn`` is the
    DSN of its one project."""

    def __init__(self, workdir: Optional[Path] = None):
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="bugsink-bench-"))
        self.port = free_port()
        self.python = ensure_venv("bugsink", [f"bugsink=={BUGSINK_VERSION}"])
        self.bin = self.python.parent
        self.dsn = ""
        self._web: Optional[subprocess.Popen] = None
        self._snappea: Optional[subprocess.Popen] = None

    @property
    def _env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(self.workdir),
                    DJANGO_SETTINGS_MODULE="bugsink_conf")

    def _run(self, *command: str) -> str:
        done = subprocess.run([str(self.bin / command[0]), *command[1:]], cwd=self.workdir,
                              env=self._env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _configure(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._run("bugsink-create-conf", "--template=singleserver", "--host=127.0.0.1",
                  f"--port={self.port}", f"--base-dir={self.workdir}",
                  f"--output-file={self.workdir / 'bugsink_conf.py'}")
        with open(self.workdir / "bugsink_conf.py", "a", encoding="utf-8") as conf:
            conf.write(OVERRIDES.format(port=self.port))
        self._run("bugsink-manage", "migrate", "--noinput")
        self._run("bugsink-manage", "migrate", "--noinput", "--database=snappea")
        printed = self._run("bugsink-manage", "shell", "-c", CREATE_PROJECT)
        self.dsn = [line for line in printed.split() if line.startswith("http")][-1]

    def __enter__(self) -> "BugsinkServer":
        self._configure()
        log = open(self.workdir / "bugsink.log", "ab")
        self._web = subprocess.Popen(
            [str(self.bin / "gunicorn"), f"--bind=127.0.0.1:{self.port}",
             f"--workers={GUNICORN_WORKERS}", "--error-logfile=-", "bugsink.wsgi"],
            cwd=self.workdir, env=self._env, stdout=log, stderr=subprocess.STDOUT)
        self._snappea = subprocess.Popen([str(self.bin / "bugsink-runsnappea")],
                                         cwd=self.workdir, env=self._env, stdout=log,
                                         stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2):
                    return self
            except urllib.error.HTTPError:
                return self  # answering (a redirect to the login page, or 4xx): it is up
            except OSError:
                if self._web.poll() is not None:
                    break
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("Bugsink did not start: " + self.log())

    def __exit__(self, *exc: object) -> None:
        stop_process(self._web)
        stop_process(self._snappea)

    def log(self) -> str:
        """What Bugsink logged so far (last 3000 characters)."""
        path = self.workdir / "bugsink.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def digested(self) -> int:
        """Events fully processed (digested) so far."""
        with sqlite3.connect(str(self.workdir / "db.sqlite3"), timeout=30) as connection:
            row = connection.execute(
                "SELECT COALESCE(SUM(digested_event_count), 0) FROM projects_project").fetchone()
        return int(row[0])

    @property
    def pids(self) -> list[int]:
        """The processes that serve (for memory and CPU figures)."""
        return [process.pid for process in (self._web, self._snappea) if process is not None]
