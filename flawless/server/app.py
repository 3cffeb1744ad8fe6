"""Builds the server's services from a Config, and starts and stops them in order.

Start: thread pools, database, rules, repository, processor, outbox, then the listeners.
Stop (SIGINT/SIGTERM): listeners first (no new reports), then every accepted report is
committed, the batch in progress finishes, the mail in flight is delivered, pools stop.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

from flawless import __version__
from flawless.config import Config
from flawless.server import mail
from flawless.server.blame import BlameService, Repository
from flawless.server.inbox import InboxWriter
from flawless.server.processor import Processor
from flawless.server.ratelimit import TokenBuckets
from flawless.server.rpc import RpcResource, make_bounded_request
from flawless.server.rules import Rules, RulesReloader, load_rules
from flawless.server.settings import alert_settings, routing_settings
from flawless.server.store import Store
from flawless.server.web import build_web_root

log = Logger()

DATABASE_FILE = "flawless.sqlite3"
MAILBOX_FILE = "mailbox"
LISTENING_FILE = "listening.json"
PRUNE_INTERVAL_SECONDS = 3600.0


class ListeningService(service.Service):
    """Listens on a TCP port with a twisted.web Site; ``port`` is the bound port."""

    def __init__(self, reactor: Any, port: int, interface: str, site: server.Site, name: str):
        self._reactor = reactor
        self._wanted = port
        self._interface = interface
        self._site = site
        self.setName(name)
        self.listening: Any = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the wanted one when that was 0)."""
        return self.listening.getHost().port if self.listening else self._wanted

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Bind and listen."""
        super().startService()
        self.listening = self._reactor.listenTCP(self._wanted, self._site,
                                                 interface=self._interface)
        log.info("{name} listening on {host}:{port}", name=self.name, host=self._interface,
                 port=self.port)

    def stopService(self) -> Any:  # noqa: N802 - Twisted API
        """Stop listening."""
        super().stopService()
        listening, self.listening = self.listening, None
        return listening.stopListening() if listening else None


class PoolService(service.Service):
    """Starts and stops one named thread pool."""

    def __init__(self, pool: ThreadPool):
        self.pool = pool

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start the pool's threads on demand."""
        super().startService()
        self.pool.start()

    def stopService(self) -> Any:  # noqa: N802 - Twisted API
        """Let queued work finish, then stop the threads."""
        super().stopService()
        return threads.deferToThread(self.pool.stop)


class FlawlessServer(service.MultiService):
    """Every part of one flawless server, started and stopped as one."""

    def __init__(self, config: Config, reactor: Any = None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self.reactor = reactor
        self.config = config
        self.started_at = time.time()
        os.makedirs(config.data_dir_path, exist_ok=True)
        self.store = Store(os.path.join(config.data_dir_path, DATABASE_FILE))
        self.rules: Rules = load_rules(config.config_dir_path)
        self.rules_problems: list[str] = []

        self.inbox_pool = ThreadPool(minthreads=0, maxthreads=1, name="flawless-inbox")
        self.db_pool = ThreadPool(minthreads=0, maxthreads=1, name="flawless-db")
        self.read_pool = ThreadPool(minthreads=0, maxthreads=2, name="flawless-read")
        self.pools = [PoolService(pool) for pool in
                      (self.inbox_pool, self.db_pool, self.read_pool)]

        self.repository: Optional[Repository] = None
        self.blamer: Optional[BlameService] = None
        if config.repo_dir:
            self.repository = Repository(config.repo_dir, git_cli_path=config.git_cli_path,
                                         timeout=config.git_timeout_seconds,
                                         repo_url=config.repo_url,
                                         branch=config.repo_branch_pattern)
            self.blamer = BlameService(self.repository, config.max_concurrent_git_blames,
                                       cache_size=config.blame_cache_size, reactor=reactor)

        self.outbox = mail.OutboxSender(
            self.store, mail.make_deliverer(self._smtp_settings(),
                                            os.path.join(config.data_dir_path, MAILBOX_FILE)),
            reactor=reactor)
        self.processor = Processor(
            self.store, self.db_pool, self.blamer, lambda: self.rules,
            routing_settings(config), alert_settings(config),
            config.smtp_from, config.base_url, self.outbox.wake,
            ingest_busy=lambda: self.inbox.busy,
            reactor=reactor)
        self.inbox = InboxWriter(self.store, self.inbox_pool, reactor,
                                 on_stored=self.processor.wake_soon)
        self.reloader = RulesReloader(config.config_dir_path, on_reload=self._rules_reloaded,
                                      on_broken=self._rules_broken, clock=reactor)

        burst = config.rate_limit_burst_seconds
        rpc_root = RpcResource(
            self.inbox, config.ingest_keys, config.max_body_bytes,
            per_key=TokenBuckets(config.rate_limit_per_key, config.rate_limit_per_key * burst),
            per_address=TokenBuckets(config.rate_limit_per_address,
                                     config.rate_limit_per_address * burst))
        rpc_site = server.Site(_rpc_root(rpc_root))
        rpc_site.requestFactory = make_bounded_request(config.max_body_bytes)
        rpc_site.displayTracebacks = False
        web_site = server.Site(build_web_root(self))
        web_site.displayTracebacks = False
        self._pruning = task.LoopingCall(self._prune)
        self.rpc_listener = ListeningService(reactor, config.port, config.bind_address,
                                             rpc_site, "rpc")
        self.web_listener = ListeningService(reactor, config.http_port, config.bind_address,
                                             web_site, "dashboard")

    def _prune(self) -> defer.Deferred:
        cutoff = time.time() - self.config.retention_weeks * 7 * 86400
        pruned = self.db_call(self.store.prune, cutoff)
        pruned.addCallback(lambda count: count and log.info(
            "pruned {count} errors older than {weeks} weeks", count=count,
            weeks=self.config.retention_weeks))
        pruned.addErrback(lambda failure: log.failure("pruning failed", failure))
        return pruned

    def _smtp_settings(self) -> Optional[mail.SmtpSettings]:
        address = self.config.smtp_address
        if address is None:
            return None
        return mail.SmtpSettings(host=address[0], port=address[1], user=self.config.smtp_user,
                                 password=self.config.smtp_password,
                                 use_tls=self.config.smtp_use_tls,
                                 timeout=self.config.smtp_timeout_seconds)

    def _rules_reloaded(self, rules: Rules) -> None:
        log.info("rule files reloaded")
        self.rules = rules
        self.rules_problems = []

    def _rules_broken(self, problems: list[str], fingerprint: str) -> None:
        self.rules_problems = list(problems)
        if not self.config.default_contact:
            return
        note = mail.render_note("flawless: a rule file is broken; the previous rules stay in force",
                                problems, [self.config.default_contact], self.config.smtp_from)
        self.db_call(self._queue_note, note).addCallback(lambda _: self.outbox.wake())

    def _queue_note(self, note: Any) -> None:
        with self.store.transaction() as connection:
            self.store.queue_mail(connection, None, time.time(), mail.message_bytes(note),
                                  mail.message_recipients(note))

    def db_call(self, function: Any, *args: Any) -> defer.Deferred:
        """Run a database write in the database thread."""
        return threads.deferToThreadPool(self.reactor, self.db_pool, function, *args)

    def read_call(self, function: Any, *args: Any) -> defer.Deferred:
        """Run a database read in a reader thread."""
        return threads.deferToThreadPool(self.reactor, self.read_pool, function, *args)

    def startService(self) -> None:  # noqa: N802 - Twisted API
        """Start the parts in dependency order and write the bound ports to a file."""
        for pool in self.pools:
            pool.startService()
        if self.blamer is not None:
            self.blamer.start()
            if self.config.repo_url:
                self.blamer.fetch_periodically(self.config.repo_fetch_interval_seconds)
        self.reloader.start()
        if self.config.retention_weeks:
            self._pruning.clock = self.reactor
            self._pruning.start(PRUNE_INTERVAL_SECONDS, now=True)
        self.outbox.start()
        self.processor.startService()
        self.rpc_listener.startService()
        self.web_listener.startService()
        if not self.config.hostname:
            self.processor.base_url = (f"http://{self.config.bind_address}:"
                                       f"{self.web_listener.port}")
        service.Service.startService(self)
        self._write_listening_file()

    def _write_listening_file(self) -> None:
        path = os.path.join(self.config.data_dir_path, LISTENING_FILE)
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "bind_address": self.config.bind_address,
                       "port": self.rpc_listener.port,
                       "http_port": self.web_listener.port}, handle)
        os.replace(temporary, path)

    async def _stop(self) -> None:
        await defer.maybeDeferred(self.rpc_listener.stopService)
        await defer.maybeDeferred(self.web_listener.stopService)
        await self.inbox.drain()
        self.reloader.stop()
        if self._pruning.running:
            self._pruning.stop()
        await defer.maybeDeferred(self.processor.stopService)
        await defer.maybeDeferred(self.outbox.stop)
        if self.blamer is not None:
            await defer.maybeDeferred(self.blamer.stop)
        for pool in reversed(self.pools):
            await defer.maybeDeferred(pool.stopService)
        log.info("flawless stopped; every accepted report is stored")

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted API
        """Stop the parts in reverse dependency order, losing no accepted report."""
        service.Service.stopService(self)
        return defer.ensureDeferred(self._stop())

    def health(self) -> dict[str, Any]:
        """Status for /check_health (runs in a reader thread; shows no secret)."""
        return {
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "inbox_depth": self.store.inbox_depth(),
            "outbox_depth": self.store.outbox_depth(),
            "processed": self.processor.processed,
            "last_repository_fetch": getattr(self.blamer, "last_fetch", None),
            "repository_error": getattr(self.blamer, "last_error", None),
            "rule_files": {"status": "broken" if self.rules_problems else "ok",
                           "problems": list(self.rules_problems)},
            "statistics": self.store.stats(),
        }


def _rpc_root(rpc: RpcResource) -> resource.Resource:
    """``/rpc`` (and ``/``, for clients configured with the bare host:port) answer JSON-RPC."""
    root = resource.Resource()
    root.putChild(b"rpc", rpc)
    root.putChild(b"", rpc)
    return root
