"""The server as one service tree, built from a Config.

Children start in the order they are added and stop in reverse:

    thread pools -> rules -> blame -> outbox -> processor -> fix trailers -> inbox -> wake-ups
    from other servers -> heartbeat -> pruning -> listeners

The listeners come last so that they stop first (no new report is accepted), then the inbox
commits every accepted report, the batch in progress finishes, the mail in flight is
settled, and the pools let their queued work finish. They are nevertheless *bound* first:
:meth:`FlawlessServer.bind` (``privilegedStartService``) listens on both ports before any
thread starts, so a port in use fails the start at once and cleanly.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from twisted.application import internet, service, strports
from twisted.internet import defer
from twisted.logger import Logger

from flawless import __version__
from flawless.config import Config
from flawless.server.atomic import write_atomically
from flawless.server.connections import (ConnectionBounds, GuardedSite, client_address,
                                         make_guarded_request, open_file_limit)
from flawless.server.core.admission import ByteBudget, TrustedProxies, fit_connection_caps
from flawless.server.delivery import render
from flawless.server.delivery.outbox import OutboxService
from flawless.server.delivery.wiring import build_delivery, channel_secrets
from flawless.server.git.repository import Repository
from flawless.server.ingest.gate import IngestGate
from flawless.server.ingest.inbox import InboxWriter
from flawless.server.ingest.keys import IngestKeys
from flawless.server.ingest.ratelimit import TokenBuckets
from flawless.server.ingest.root import build_report_root
from flawless.server.processing.blame_service import BlameService
from flawless.server.processing.fix_trailers import FixTrailerService
from flawless.server.processing.processor import Processor
from flawless.server.processing.sourcemaps import SourceMapResolver
from flawless.server.rules.reloading import RulesService
from flawless.server.settings import alert_settings, routing_settings
from flawless.server.storage.listening import WakeupListener
from flawless.server.storage.opening import open_storage
from flawless.server.threads import PoolService
from flawless.server.web.health import HealthPage, config_secrets
from flawless.server.web.root import WebParts, build_web_root

log = Logger()

LISTENING_FILE = "listening.json"
PRUNE_INTERVAL_SECONDS = 3600.0
HEARTBEAT_SECONDS = 5.0
READER_THREADS = 2
# A PostgreSQL server's connections: each reader and writer thread's, the health page's,
# the batch being processed (its claim stays open while it is blamed), and one to spare.
DATABASE_CONNECTIONS = READER_THREADS + 2 + 1 + 1 + 1
DASHBOARD_MAX_BODY_BYTES = 256 * 1024   # a login or rule form is a few hundred bytes


class Listener(internet.StreamServerEndpointService):
    """A listening port from a strports description; ``port`` is the bound port."""

    _raiseSynchronously = True   # a port in use fails bind() at once

    def __init__(self, name: str, description: str, factory: Any, reactor: Any):
        endpoint = strports.service(description, factory, reactor=reactor).endpoint
        super().__init__(endpoint, factory)
        self.setName(name)
        self.port: Optional[int] = None

    def privilegedStartService(self) -> None:  # noqa: N802 - Twisted API
        """Bind and listen."""
        super().privilegedStartService()
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, listening: Any) -> Any:
        self.port = listening.getHost().port
        log.info("{name} listening on port {port}", name=self.name, port=self.port)
        return listening


def listen_description(port: int, interface: str) -> str:
    """The strports description of a TCP port on ``interface`` (colons of IPv6 escaped)."""
    return f"tcp:{port}:interface={interface.replace(':', chr(92) + ':')}"


class FlawlessServer(service.MultiService):
    """Every part of one flawless server, started and stopped as one."""

    def __init__(self, config: Config, reactor: Any = None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self.reactor = reactor
        self.config = config
        self.started_at = reactor.seconds()
        os.makedirs(config.data_dir_path, exist_ok=True)
        self.storage = open_storage(config, connections=DATABASE_CONNECTIONS)
        wanted = (config.max_connections, config.max_connections)
        self.open_files = open_file_limit(wanted)
        self.connection_caps = fit_connection_caps(self.open_files.soft, wanted)
        self.trusted = TrustedProxies(config.trusted_proxies)
        total = config.max_buffered_body_bytes
        self.body_budget = ByteBudget(total, max(total // 4, min(total, config.max_body_bytes)))

        # SQLite: the one thread that writes the database; PostgreSQL: a few
        self.writer = self._pool("db-write", self.storage.writer_threads)
        self.reader = self._pool("db-read", READER_THREADS)
        self.delivery_pool = self._pool("delivery", 1)
        self.health_pool = self._pool("health", 1)   # never waits behind the pages' reads
        self.rules = RulesService(config.config_dir_path, config.data_dir_path,
                                  on_broken=self._rules_broken, clock=reactor)
        self.rules.setServiceParent(self)

        self.blamer: Optional[BlameService] = None
        if config.repo_dir:
            repository = Repository(config.repo_dir, git_cli_path=config.git_cli_path,
                                    timeout=config.git_timeout_seconds,
                                    repo_url=config.repo_url,
                                    branch=config.repo_branch_pattern,
                                    detect_moves=config.blame_detect_moves)
            self.blamer = BlameService(
                repository, self._pool("git", config.max_concurrent_git_blames),
                # a fetch may take minutes: its own thread keeps every blame slot free
                self._pool("fetch", 1), reactor, cache_size=config.blame_cache_size,
                fetch_interval=config.repo_fetch_interval_seconds,
                commit_graph=config.git_commit_graph)
            self.blamer.setServiceParent(self)

        self.delivery = build_delivery(config, self.storage, self.reader, self.writer,
                                       self.delivery_pool, reactor, self.base_url)
        self.outbox = OutboxService(self.storage, self.writer, self.delivery.channels,
                                    self.delivery.alerts.composer, clock=reactor)
        self.outbox.setServiceParent(self)
        self.processor = Processor(
            self.storage, self.reader, self.writer, self.blamer, lambda: self.rules.current,
            routing_settings(config), alert_settings(config), self.delivery.alerts,
            self.outbox.wake, clock=reactor,
            sourcemaps=SourceMapResolver(self.storage, self.reader, reactor))
        self.processor.setServiceParent(self)
        if self.blamer is not None:
            FixTrailerService(
                self.blamer, self.storage, self.writer, reactor,
                config.fixes_scan_interval_seconds,
                config.retention_weeks * 7 * 86400 if config.retention_weeks else None
            ).setServiceParent(self)
        self.inbox = InboxWriter(self.storage, self.writer, reactor,
                                 on_stored=self.processor.wake_soon)
        self.inbox.setServiceParent(self)
        wakeups = self.storage.wakeups()
        if wakeups is not None:
            WakeupListener(wakeups, {"inbox": self.processor.wake_soon,
                                     "outbox": self.outbox.wake}, reactor).setServiceParent(self)
        self._timer("heartbeat", HEARTBEAT_SECONDS, self._heartbeat)
        if config.retention_weeks:
            self._timer("pruning", PRUNE_INTERVAL_SECONDS, self._prune)

        self.rpc_listener = Listener(
            "rpc", listen_description(config.port, config.bind_address),
            self._rpc_site(), reactor)
        self.rpc_listener.setServiceParent(self)
        self.web_listener = Listener(
            "dashboard", listen_description(config.http_port, config.bind_address),
            self._web_site(), reactor)
        self.web_listener.setServiceParent(self)

    def _pool(self, name: str, size: int) -> PoolService:
        pool = PoolService(name, size, self.reactor)
        pool.setServiceParent(self)
        return pool

    def _timer(self, name: str, interval: float, call: Any) -> None:
        timer = internet.TimerService(interval, call)
        timer.clock = self.reactor
        timer.setName(name)
        timer.setServiceParent(self)

    # -- the parts' wiring --

    def _bounds(self, cap: int) -> ConnectionBounds:
        config = self.config
        return ConnectionBounds(cap, config.max_connections_per_address,
                                config.header_timeout_seconds, config.body_timeout_seconds)

    def _rpc_site(self) -> GuardedSite:
        config = self.config
        burst = config.rate_limit_burst_seconds
        keys = IngestKeys(config.ingest_keys)
        # One gate for every way in: JSON-RPC, Sentry SDKs and pages share keys and rates.
        gate = IngestGate(
            self.inbox, keys, self.reactor,
            per_key=TokenBuckets(config.rate_limit_per_key, config.rate_limit_per_key * burst),
            per_address=TokenBuckets(config.rate_limit_per_address,
                                     config.rate_limit_per_address * burst),
            trusted=self.trusted)
        site = GuardedSite(build_report_root(gate, config.max_body_bytes,
                                             config.allowed_origins),
                           self._bounds(self.connection_caps[0]), self.trusted, "rpc",
                           self.reactor)
        site.requestFactory = make_guarded_request(config.max_body_bytes, self.body_budget,
                                                   self.trusted, keys.authorized)
        return site

    def _web_site(self) -> GuardedSite:
        config = self.config
        site = GuardedSite(build_web_root(WebParts(
            storage=self.storage, reader=self.reader, writer=self.writer, clock=self.reactor,
            health=HealthPage(self.health, self.health_pool,
                              config_secrets(config) + channel_secrets(config)),
            config_dir=config.config_dir_path, config_path=config.path or "",
            admin_password=config.admin_password, reload_rules=self.rules.poll,
            viewer_password=config.viewer_password, secure_cookies=config.behind_tls,
            client_address=lambda request: client_address(request, self.trusted),
            page_size=config.page_size,
            commits=self.blamer.commit_info if self.blamer is not None else None)),
            self._bounds(self.connection_caps[1]), self.trusted, "dashboard", self.reactor)
        site.requestFactory = make_guarded_request(DASHBOARD_MAX_BODY_BYTES, self.body_budget,
                                                   self.trusted)
        return site

    def base_url(self) -> str:
        """The dashboard's base URL for links (its bound port when none is configured)."""
        if self.config.hostname:
            return self.config.hostname
        port = self.web_listener.port if self.web_listener.port is not None \
            else self.config.http_port
        return f"http://{self.config.bind_address}:{port}"

    def _prune(self) -> defer.Deferred:
        cutoff = self.reactor.seconds() - self.config.retention_weeks * 7 * 86400
        pruned = self.writer.run(self.storage.prune, cutoff)
        pruned.addCallback(lambda count: count and log.info(
            "pruned {count} errors older than {weeks} weeks", count=count,
            weeks=self.config.retention_weeks))
        pruned.addErrback(lambda failure: log.failure("pruning failed", failure))
        return pruned

    def _heartbeat(self) -> defer.Deferred:
        beat = self.writer.run(self.storage.heartbeat, self.reactor.seconds(), self.started_at,
                               __version__)
        beat.addErrback(lambda failure: log.failure("heartbeat failed", failure))
        return beat

    def _rules_broken(self, problems: list[str]) -> None:
        """Tell the default contact, once per broken version of the rule files."""
        if not self.config.default_contact:
            return
        note = render.render_note(
            "flawless: a rule file is broken; the previous rules stay in force",
            problems + ["", f"In force: {self.rules.in_force}."],
            [self.config.default_contact], self.config.smtp_from)
        queued = self.writer.run(self._queue_note, note)
        queued.addCallbacks(lambda _: self.outbox.wake(),
                            lambda failure: log.failure("cannot queue the note", failure))

    def _queue_note(self, note: Any) -> None:
        with self.storage.transaction() as transaction:
            self.delivery.alerts.queue_notes(transaction, [note], self.reactor.seconds())

    # -- starting and stopping --

    def bind(self) -> None:
        """Listen on both ports; raises (CannotListenError) when one cannot be bound."""
        self.privilegedStartService()

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start every part in order, then write the bound ports to a file."""
        limit = self.open_files
        log.info("open files: at most {soft} (raised from {before}; hard limit {hard}); "
                 "connections: at most {rpc} on the report port, {web} on the dashboard",
                 soft=limit.soft, before=limit.before, hard=limit.hard,
                 rpc=self.connection_caps[0], web=self.connection_caps[1])
        if self.config.max_connections and \
                min(self.connection_caps) < self.config.max_connections:
            log.warn("max_connections = {wanted} does not fit in the open-file limit of "
                     "{soft}: lowered to {caps}", wanted=self.config.max_connections,
                     soft=limit.soft, caps=list(self.connection_caps))
        super().startService()
        self._write_listening_file()

    def _write_listening_file(self) -> None:
        write_atomically(os.path.join(self.config.data_dir_path, LISTENING_FILE), json.dumps({
            "pid": os.getpid(), "bind_address": self.config.bind_address,
            "port": self.rpc_listener.port, "http_port": self.web_listener.port}).encode())

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Stop every part in reverse order, each once the one before it has stopped (a
        MultiService would stop them all at once: a pool could stop under a batch that
        still needs it), losing no accepted report."""
        service.Service.stopService(self)
        return defer.ensureDeferred(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        for child in reversed(list(self)):
            try:
                await defer.maybeDeferred(child.stopService)
            except Exception:  # noqa: BLE001 - the other parts must stop all the same
                log.failure("stopping {name} failed", name=child.name)
        self.storage.close()
        log.info("flawless stopped; every accepted report is stored")

    # -- health --

    def _channel_health(self) -> dict[str, Any]:
        """Each configured channel (and any other with entries left): pending, held back by
        the hourly bounds, failing, and the last error (the health page masks secrets)."""
        found = {name: {"pending": 0, "held": 0, "failing": 0, "last_error": None}
                 for name in self.delivery.channels}
        for state in self.storage.channel_states():
            found[state.channel] = {"pending": state.pending, "held": state.held,
                                    "failing": state.failing, "last_error": state.last_error}
        return found

    def health(self) -> dict[str, Any]:
        """Status for /check_health (runs in a reader thread; secrets are masked by the
        page). ``degraded`` names each reason; no error data is shown."""
        now = self.reactor.seconds()
        problems = []
        oldest = self.storage.oldest_waiting()
        backlog_age = max(0.0, now - oldest) if oldest is not None else 0.0
        if backlog_age > self.config.max_backlog_seconds:
            problems.append(f"backlog: the oldest report has waited {backlog_age:.0f} s "
                            f"(max_backlog_seconds is {self.config.max_backlog_seconds:g})")
        repository_error = self.blamer.last_error if self.blamer is not None else None
        if repository_error:
            problems.append(f"repository: {repository_error}")
        if self.rules.problems:
            problems.append(f"rule files are broken; in force: {self.rules.in_force}")
        room = self.storage.room()   # None: the database's disk is not this machine's
        if room is not None and room < self.config.min_free_disk_bytes:
            problems.append(f"disk: {room} bytes free for the database, less than "
                            f"min_free_disk_bytes: new reports are refused until there is room")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "version": __version__,
            "uptime_seconds": round(now - self.started_at, 3),
            # the backlog of every server sharing the database
            "inbox_depth": self.storage.inbox_depth(),
            "backlog_age_seconds": round(backlog_age, 3),
            "outbox_depth": self.storage.outbox_depth(),
            "disk_free_bytes": room,
            "channels": self._channel_health(),
            "processed": self.processor.processed,
            "database": self.storage.describe(),
            "server_id": self.storage.server_id,
            "servers": [{"server_id": server.server_id, "hostname": server.hostname,
                         "pid": server.pid, "version": server.version,
                         "up_seconds": round(now - server.started_at, 1),
                         "seen_seconds_ago": round(now - server.seen_at, 1)}
                        for server in self.storage.live_servers(now)],
            "last_repository_fetch": self.blamer.last_fetch if self.blamer else None,
            "repository_error": repository_error,
            "rule_files": {"status": "broken" if self.rules.problems else "ok",
                           "in_force": self.rules.in_force,
                           "version": self.rules.version,
                           "problems": list(self.rules.problems)},
            "statistics": self.storage.stats(),
            "connections": {"report_port": self.rpc_listener.factory.status(),
                            "dashboard": self.web_listener.factory.status(),
                            "buffered_body_bytes": self.body_budget.held,
                            "open_file_limit": self.open_files.soft},
            "configuration": self.config.public_dict(),
        }
