"""``/check_health``: the server's state for people and monitors, never a secret.

Answered from the server's own counters and cheap indexed counts in a thread of its own (so
it never waits behind the pages' reads), one computation shared by every request that
arrives while it runs; 503 with the reason (secrets masked) when even that cannot be read.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from twisted.web import server

from flawless.config import Config
from flawless.server.coalesce import Coalescer
from flawless.server.core.redaction import redact, redact_data, url_secrets
from flawless.server.threads import Runner
from flawless.server.web.http import Answer, json_answer


def config_secrets(config: Config) -> list[str]:
    """Every secret value of the config: the secret options, and the credentials of
    repo_url."""
    found = [str(config.smtp_password), str(config.admin_password),
             str(config.viewer_password), *config.ingest_keys]
    return found + url_secrets(config.repo_url, minimum=1)


class HealthPage:
    """The health handler: ``status()`` runs through ``reader`` (the server gives it a
    thread of its own), its answer is redacted."""

    def __init__(self, status: Callable[[], dict[str, Any]], reader: Runner,
                 secrets: Sequence[str]):
        self._status = status
        self._reader = reader
        self._secrets = tuple(secrets)
        self._coalescer = Coalescer()

    async def health(self, request: server.Request) -> Answer:
        """``/check_health`` and ``/api/health``: 503 when the status cannot be read."""
        try:
            status = await self._coalescer.run("status",
                                               lambda: self._reader.run(self._status))
            return json_answer(redact_data(status, self._secrets))
        except Exception as error:  # noqa: BLE001 - any failure means "not healthy"
            reason = redact(str(error), self._secrets)
            return Answer(503, json.dumps({"status": "error", "reason": reason}).encode(),
                          "application/json")
