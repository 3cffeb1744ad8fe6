"""The server as a process: foreground or daemon, pid file, logging, start and stop.

A start either ends with the server listening or with the reason it cannot, within
seconds: the ports are bound before any thread starts, and a daemon's first process waits
on a pipe until its daemonised child reports that it listens (exit 0) or why it failed
(exit 1, the reason on stderr), the way twistd does, so no stray process is ever left.
SIGINT and SIGTERM stop the server cleanly, losing no accepted report.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional, TextIO

from flawless.config import Config

EXIT_OK, EXIT_FAILURE = 0, 1
DAEMON_LOG_FILE = "flawless.log"


class StartFailed(Exception):
    """The server cannot start; the message says why, for the person who started it."""


def running_pid(pid_file: str) -> Optional[int]:
    """The pid in ``pid_file`` when that process is alive, else None."""
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except PermissionError:
        return pid  # alive, but another user's
    except (OSError, ValueError):
        return None
    return pid


def _write_pid(pid_file: str) -> None:
    from flawless.server.atomic import write_atomically

    os.makedirs(os.path.dirname(pid_file) or ".", exist_ok=True)
    write_atomically(pid_file, f"{os.getpid()}\n".encode())


def _start_logging(config: Config, default_file: Optional[str]) -> None:
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                globalLogBeginner, textFileLogObserver)

    path = config.log_file or default_file
    stream: TextIO = open(path, "a", encoding="utf-8") if path else sys.stderr
    level = LogLevel.levelWithName(config.log_level)
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _build_and_bind(config: Config) -> tuple[Any, Any]:
    """The reactor and a server listening on both ports, with no thread started yet."""
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    from flawless.server.app import FlawlessServer
    from flawless.server.storage.records import StorageUnavailable

    try:
        flawless_server = FlawlessServer(config, reactor)
    except StorageUnavailable as error:
        raise StartFailed(f"flawless cannot start: the database: {error}") from None
    except OSError as error:
        raise StartFailed(f"flawless cannot start: {error}") from None
    try:
        flawless_server.bind()
    except CannotListenError as error:
        reason = error.socketError.strerror if hasattr(error.socketError, "strerror") \
            else str(error.socketError)
        raise StartFailed(f"flawless cannot start: cannot listen on {error.interface or '*'}:"
                          f"{error.port}: {reason}") from None
    return reactor, flawless_server


def _serve(reactor: Any, flawless_server: Any, pid_file: str,
           on_started: Callable[[Optional[str]], None]) -> int:
    """Run until SIGINT or SIGTERM; ``on_started`` gets None once listening, or the reason
    the start failed."""
    from twisted.logger import Logger

    log = Logger()
    outcome = {"status": EXIT_OK}

    def start() -> None:
        try:
            flawless_server.startService()
        except Exception as error:  # noqa: BLE001 - any start failure ends the process
            log.critical("flawless cannot start: {error}", error=error)
            outcome["status"] = EXIT_FAILURE
            on_started(f"flawless cannot start: {error}")
            reactor.stop()
            return
        _write_pid(pid_file)
        on_started(None)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger(
        "before", "shutdown",
        lambda: flawless_server.stopService() if flawless_server.running else None)
    reactor.run()
    if running_pid(pid_file) == os.getpid():
        os.unlink(pid_file)
    return outcome["status"]


def start_foreground(config: Config, err: TextIO = sys.stderr) -> int:
    """Run the server in this process until SIGINT or SIGTERM."""
    other = running_pid(config.pid_file)
    if other is not None:
        print(f"flawless already runs with pid {other} ({config.pid_file})", file=err)
        return EXIT_FAILURE
    try:
        reactor, flawless_server = _build_and_bind(config)
    except StartFailed as failure:
        print(failure, file=err)
        return EXIT_FAILURE
    _start_logging(config, None)
    return _serve(reactor, flawless_server, config.pid_file, lambda reason: None)


def start_daemon(config: Config, err: TextIO = sys.stderr) -> int:
    """Start the server in the background; return once it listens (0) or failed (1)."""
    other = running_pid(config.pid_file)
    if other is not None:
        print(f"flawless already runs with pid {other} ({config.pid_file})", file=err)
        return EXIT_FAILURE
    reading, writing = os.pipe()
    if os.fork() > 0:
        os.close(writing)
        with os.fdopen(reading, "rb") as pipe:
            answer = pipe.read().decode("utf-8", "replace")
        if answer == "listening":
            return EXIT_OK
        print(answer or "flawless cannot start: the server ended before it listened", file=err)
        return EXIT_FAILURE
    os.close(reading)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    _daemon_main(config, writing)  # never returns


def _daemon_main(config: Config, pipe: int) -> None:
    """The daemonised process: report to the waiting parent through ``pipe``, then serve."""
    status = EXIT_FAILURE

    def tell(reason: Optional[str]) -> None:
        nonlocal pipe
        if pipe >= 0:
            os.write(pipe, (reason or "listening").encode("utf-8"))
            os.close(pipe)
            pipe = -1

    try:
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for descriptor in (0, 1, 2):
            os.dup2(null, descriptor)
        try:
            reactor, flawless_server = _build_and_bind(config)
        except StartFailed as failure:
            tell(str(failure))
        else:
            _start_logging(config, os.path.join(config.data_dir_path, DAEMON_LOG_FILE))
            status = _serve(reactor, flawless_server, config.pid_file, tell)
    except BaseException as error:  # noqa: BLE001 - the parent must hear of any failure
        tell(f"flawless cannot start: {error}")
    finally:
        tell("flawless cannot start: the server ended before it listened")
        os._exit(status)
