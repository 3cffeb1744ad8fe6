"""The ``flawless`` command: configure, start, stop, options, check, run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from importlib import resources
from typing import Callable, Optional, Sequence, TextIO

from flawless.config import OPTIONS_BY_NAME, Config, ConfigError, describe_options, load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXAMPLE_PACKAGE = "flawless.example_config"
STOP_TIMEOUT_SECONDS = 60.0


def _add_conf(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("-conf", "--conf", dest="conf", required=required,
                        default=None if required else "flawless.cfg", metavar="PATH",
                        help="path of flawless.cfg")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="flawless",
        description="Blame the line behind each Python exception and email its author.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    configure = commands.add_parser("configure", help="write flawless.cfg and the rule files")
    _add_conf(configure, required=False)
    start = commands.add_parser("start", help="run the server")
    _add_conf(start, required=True)
    start.add_argument("--daemon", action="store_true",
                       help="run in the background and write a pid file")
    stop = commands.add_parser("stop", help="stop a daemonised server")
    _add_conf(stop, required=True)
    commands.add_parser("options", help="list every option of flawless.cfg")
    check = commands.add_parser("check", help="validate the config and every rule file")
    _add_conf(check, required=True)
    check.add_argument("--explain", metavar="REPORT.json",
                       help="print how a report would be routed, without sending anything")
    run = commands.add_parser("run", help="run a program, reporting its uncaught exceptions")
    run.add_argument("-conf", "--conf", dest="conf", default=None, metavar="PATH",
                     help="the server's flawless.cfg (default: FLAWLESS_* variables)")
    run.add_argument("program", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    return parser


def _load(path: str, out: TextIO) -> Optional[Config]:
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=out)
        return None


# -- options ------------------------------------------------------------------------------

def command_options(_: argparse.Namespace) -> int:
    """Print the option table."""
    print(describe_options())
    return EXIT_OK


# -- check --------------------------------------------------------------------------------

def command_check(args: argparse.Namespace) -> int:
    """Validate flawless.cfg and every rule file; optionally explain one report."""
    from flawless.server.rules import check_rules

    config = _load(args.conf, sys.stderr)
    if config is None:
        return EXIT_FAILURE
    problems = check_rules(config.config_dir_path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_FAILURE
    if args.explain:
        return _explain(config, args.explain)
    print(f"{config.path}: configuration and rule files are valid")
    return EXIT_OK


def _explain(config: Config, report_path: str) -> int:
    from flawless.report import InvalidReport, parse_report
    from flawless.server.explain import explain_report

    try:
        with open(report_path, encoding="utf-8") as handle:
            data = json.load(handle)
        report = parse_report(data.get("report", data) if isinstance(data, dict) else data)
    except (OSError, ValueError) as error:
        detail = "; ".join(f"{k}: {v}" for k, v in error.errors.items()) \
            if isinstance(error, InvalidReport) else str(error)
        print(f"{report_path}: {detail}", file=sys.stderr)
        return EXIT_FAILURE
    print(explain_report(config, report))
    return EXIT_OK


# -- start and stop -----------------------------------------------------------------------

def _start_logging(config: Config) -> None:
    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                globalLogBeginner, textFileLogObserver)

    stream = open(config.log_file, "a", encoding="utf-8") if config.log_file else sys.stderr
    level = LogLevel.levelWithName(config.log_level)
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _daemonise(pid_file: str) -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for descriptor in (0, 1, 2):
        os.dup2(null, descriptor)
    _write_pid(pid_file)


def _write_pid(pid_file: str) -> None:
    os.makedirs(os.path.dirname(pid_file) or ".", exist_ok=True)
    temporary = f"{pid_file}.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(temporary, pid_file)


def _running_pid(pid_file: str) -> Optional[int]:
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def command_start(args: argparse.Namespace) -> int:
    """Run the server in the foreground, or as a daemon with a pid file."""
    from flawless.server.rules import RulesError

    config = _load(args.conf, sys.stderr)
    if config is None:
        return EXIT_FAILURE
    if args.daemon:
        other = _running_pid(config.pid_file)
        if other is not None:
            print(f"flawless already runs with pid {other} ({config.pid_file})", file=sys.stderr)
            return EXIT_FAILURE
    try:
        from flawless.server.app import FlawlessServer

        from twisted.internet import reactor

        flawless_server = FlawlessServer(config, reactor)
    except RulesError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_FAILURE
    if args.daemon:
        _daemonise(config.pid_file)
    _start_logging(config)
    return _run(reactor, flawless_server, config.pid_file if args.daemon else None)


def _run(reactor, flawless_server, pid_file: Optional[str]) -> int:  # type: ignore[no-untyped-def]
    from twisted.logger import Logger

    log = Logger()
    outcome = {"status": EXIT_OK}

    def start() -> None:
        try:
            flawless_server.startService()
        except Exception as error:  # noqa: BLE001 - any start failure ends the process
            log.critical("flawless cannot start: {error}", error=error)
            outcome["status"] = EXIT_FAILURE
            reactor.stop()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger(
        "before", "shutdown",
        lambda: flawless_server.stopService() if flawless_server.running else None)
    reactor.run()
    if pid_file and _running_pid(pid_file) == os.getpid():
        os.unlink(pid_file)
    return outcome["status"]


def command_stop(args: argparse.Namespace) -> int:
    """Send SIGTERM to the daemon named by the pid file and wait for it to exit."""
    config = _load(args.conf, sys.stderr)
    if config is None:
        return EXIT_FAILURE
    pid = _running_pid(config.pid_file)
    if pid is None:
        print(f"flawless is not running (no live pid in {config.pid_file})", file=sys.stderr)
        return EXIT_FAILURE
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            print(f"flawless (pid {pid}) stopped")
            return EXIT_OK
        time.sleep(0.1)
    print(f"flawless (pid {pid}) did not stop within {STOP_TIMEOUT_SECONDS:.0f}s",
          file=sys.stderr)
    return EXIT_FAILURE


# -- configure ----------------------------------------------------------------------------

QUESTIONS = (
    ("repo_dir", "Path of the git repository whose code is blamed", "."),
    ("email_domain_name", "Email domain of your developers (example.com)", ""),
    ("default_contact", "Who gets errors nobody can be blamed for", ""),
    ("smtp_host", "SMTP server as host:port (empty: write mail to a local mailbox)", ""),
    ("port", "Port of the JSON-RPC listener", "9028"),
    ("http_port", "Port of the dashboard", "8080"),
)


def _ask(question: str, default: str, read: Callable[[str], str]) -> str:
    try:
        answer = read(f"{question} [{default}]: ").strip()
    except EOFError:
        answer = ""
    return answer or default


def command_configure(args: argparse.Namespace,
                      read: Callable[[str], str] = input) -> int:
    """Ask a few questions, then write flawless.cfg and any missing rule file."""
    path = os.path.abspath(args.conf)
    if os.path.exists(path):
        print(f"{path} exists already; remove it first to configure anew", file=sys.stderr)
        return EXIT_FAILURE
    answers: dict[str, str] = {}
    for name, question, default in QUESTIONS:
        while True:
            answer = _ask(question, default, read)
            try:
                OPTIONS_BY_NAME[name].parse(answer)
            except ValueError as error:
                print(f"  {error}")
                continue
            answers[name] = answer
            break
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    lines = ["# Written by `flawless configure`; `flawless options` lists every option.",
             "[flawless]"]
    lines += [f"{name} = {value}" for name, value in answers.items()]
    lines += ["data_dir_path = data", ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    for example in resources.files(EXAMPLE_PACKAGE).iterdir():
        target = os.path.join(directory, example.name)
        if example.name.endswith(".yaml") and not os.path.exists(target):
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(example.read_text(encoding="utf-8"))
    print(f"wrote {path}; start with: flawless start -conf {path}")
    return EXIT_OK


def command_run(args: argparse.Namespace) -> int:
    """Replace this process with the program, the client installed in it."""
    from flawless.client.run import run_program

    return run_program(args.program, args.conf)


COMMANDS = {
    "run": command_run,
    "configure": command_configure,
    "start": command_start,
    "stop": command_stop,
    "options": command_options,
    "check": command_check,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``flawless`` console script."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
