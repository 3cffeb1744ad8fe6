"""The rules in force: loaded at start, polled for edits, kept when an edit breaks them.

A broken rule file never stops the server nor changes what is in force: at start the last
rules that loaded (a copy kept in ``data_dir_path``) apply, or none; at a reload the previous
rules stay. Each broken version of the files is reported once (a log line with file and line,
the health page, and ``on_broken``, which mails the default contact), even across restarts.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger

from flawless.server.atomic import write_atomically
from flawless.server.core.model import Rules
from flawless.server.rules.loading import (Contents, fingerprint, parse_rule_files,
                                           read_rule_files)

log = Logger()

KEPT_RULES_DIRECTORY = "rules-in-force"
REPORTED_MARK = ".reported-broken"
POLL_SECONDS = 2.0


class RulesService(service.Service):
    """Holds the rules in force and reloads them within ``interval`` seconds of an edit."""

    name = "rules"

    def __init__(self, config_dir: str, data_dir: str,
                 on_broken: Callable[[list[str]], None], clock: Any,
                 interval: float = POLL_SECONDS):
        self._config_dir = config_dir
        self._kept_dir = os.path.join(data_dir, KEPT_RULES_DIRECTORY)
        self._on_broken = on_broken
        self._timer = task.LoopingCall(self.poll)
        self._timer.clock = clock
        self._interval = interval
        self._fingerprint: Optional[str] = None
        self.current = Rules()
        self.problems: tuple[str, ...] = ()   # of the files on disk; () when they are in force
        self.in_force = "none"                # which rules apply, in words, for health
        self.version = ""                     # of the rule files in force: a hash prefix

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Load the rules (or the last ones that loaded) and poll from now on."""
        super().startService()
        self._load(starting=True)
        self._timer.start(self._interval, now=False)

    def stopService(self) -> Any:  # noqa: N802 - Twisted API
        """Stop polling."""
        super().stopService()
        if self._timer.running:
            self._timer.stop()

    def poll(self) -> None:
        """Look at the files once; reload or report when their content changed."""
        try:
            self._load(starting=False)
        except OSError as error:  # short of descriptors or memory: try again at the next poll
            log.warn("cannot read the rule files now, the rules in force stay: {error}",
                     error=error)
        except Exception:  # noqa: BLE001 - a failing poll must not end the LoopingCall
            log.failure("reloading the rule files failed")

    def _load(self, starting: bool) -> None:
        contents = read_rule_files(self._config_dir)
        version = fingerprint(contents)
        if version == self._fingerprint:
            return
        self._fingerprint = version
        rules, problems = parse_rule_files(self._config_dir, contents)
        if not problems:
            self.current, self.problems = rules, ()
            self.in_force = f"the rule files in {self._config_dir}"
            self.version = version[:12]
            log.info("rules loaded from {dir}", dir=self._config_dir)
            self._keep(contents)
            return
        self.problems = tuple(problems)
        if starting:
            self.current, self.in_force = self._kept_rules()
        log.warn("rule files are broken; in force: {in_force}\n{problems}",
                 in_force=self.in_force, problems="\n".join(problems))
        if self._reported() != version:
            self._on_broken(list(problems))
            self._mark_reported(version)

    # -- the kept copy of the last rules that loaded --

    def _kept_rules(self) -> tuple[Rules, str]:
        try:
            rules, problems = parse_rule_files(self._kept_dir, read_rule_files(self._kept_dir))
        except OSError:
            problems = ["unreadable"]
        if problems or not os.path.isdir(self._kept_dir):
            return Rules(), "none (no rules have loaded before)"
        return rules, f"the last rules that loaded (kept in {self._kept_dir})"

    def _keep(self, contents: Contents) -> None:
        try:
            os.makedirs(self._kept_dir, exist_ok=True)
            for name, data in contents.items():
                path = os.path.join(self._kept_dir, name)
                if isinstance(data, bytes):
                    write_atomically(path, data)
                elif os.path.exists(path):
                    os.unlink(path)
        except OSError as error:
            log.warn("cannot keep a copy of the rules in force in {dir}: {error}",
                     dir=self._kept_dir, error=error)

    def _reported(self) -> str:
        try:
            with open(os.path.join(self._kept_dir, REPORTED_MARK), encoding="ascii") as handle:
                return handle.read().strip()
        except OSError:
            return ""

    def _mark_reported(self, version: str) -> None:
        try:
            os.makedirs(self._kept_dir, exist_ok=True)
            write_atomically(os.path.join(self._kept_dir, REPORTED_MARK), version.encode())
        except OSError as error:
            log.warn("cannot record that broken rules were reported: {error}", error=error)

