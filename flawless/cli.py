"""The ``flawless`` command: configure, start, stop, options, check, run, migrate."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
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
                       help="run in the background once listening (the pid file is in "
                            "data_dir_path)")
    start.add_argument("--port", type=_port, metavar="N",
                       help="JSON-RPC port, overriding the file's port")
    start.add_argument("--http-port", type=_port, metavar="N",
                       help="dashboard port, overriding the file's http_port")
    stop = commands.add_parser("stop", help="stop a daemonised server")
    _add_conf(stop, required=True)
    commands.add_parser("options", help="list every option of flawless.cfg")
    check = commands.add_parser("check", help="validate the config and every rule file")
    _add_conf(check, required=True)
    check.add_argument("--explain", metavar="REPORT.json",
                       help="print how a report would be routed, without sending anything")
    migrate = commands.add_parser(
        "migrate", help="copy a single server's SQLite data into the PostgreSQL database "
                        "of the config (storage = postgresql)")
    _add_conf(migrate, required=True)
    migrate.add_argument("--from", dest="source", required=True, type=_sqlite_source,
                         metavar="sqlite:PATH", help="the SQLite file (flawless.sqlite3 in "
                                                     "the old data_dir_path)")
    run = commands.add_parser("run", help="run a program, reporting its uncaught exceptions")
    run.add_argument("-conf", "--conf", dest="conf", default=None, metavar="PATH",
                     help="the server's flawless.cfg (default: FLAWLESS_* variables)")
    run.add_argument("program", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    sourcemaps = commands.add_parser(
        "sourcemaps", help="store the source maps of a browser build for one release")
    _add_conf(sourcemaps, required=True)
    sourcemaps.add_argument("--release", required=True, metavar="SHA",
                            help="the commit the build was made from (the page's "
                                 "data-release, or the Sentry SDK's release)")
    sourcemaps.add_argument("--url-prefix", required=True, metavar="URL",
                            help="where the directory is served: /static/ or "
                                 "https://cdn.example.com/static/")
    sourcemaps.add_argument("directory", metavar="DIR",
                            help="the build's output: scripts and their *.map files")
    return parser


def _port(text: str) -> int:
    try:
        return int(OPTIONS_BY_NAME["port"].parse(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _sqlite_source(text: str) -> str:
    scheme, _, path = text.partition(":")
    if scheme != "sqlite" or not path:
        raise argparse.ArgumentTypeError(f"{text!r} must be sqlite:PATH")
    return os.path.abspath(os.path.expanduser(path))


def _load(path: str, out: TextIO, **overrides: Optional[int]) -> Optional[Config]:
    try:
        return load_config(path, {name: str(value) for name, value in overrides.items()
                                  if value is not None})
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
    from flawless.server.rules.loading import check_rules

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
    from flawless.server.processing.explain import explain_report

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


# -- migrate ------------------------------------------------------------------------------

def command_migrate(args: argparse.Namespace) -> int:
    """Copy a SQLite database into the empty PostgreSQL database the config names."""
    config = _load(args.conf, sys.stderr)
    if config is None:
        return EXIT_FAILURE
    if config.storage != "postgresql":
        print(f"{config.path}: storage is {config.storage}: flawless migrate copies into the "
              "database of storage = postgresql (set it and database_url first)",
              file=sys.stderr)
        return EXIT_FAILURE
    if not os.path.isfile(args.source):
        print(f"{args.source}: no such file", file=sys.stderr)
        return EXIT_FAILURE
    from flawless.server.storage.records import StorageUnavailable
    from flawless.server.storage.transfer import copy_sqlite_to_postgresql

    try:
        copied = copy_sqlite_to_postgresql(args.source, config.database_url)
    except StorageUnavailable as error:
        print(f"flawless migrate: nothing copied: {error}", file=sys.stderr)
        return EXIT_FAILURE
    for table, rows in copied.items():
        print(f"{table}: {rows} rows")
    print(f"copied {args.source} into PostgreSQL; start the servers with {config.path}")


# -- sourcemaps ---------------------------------------------------------------------------

def command_sourcemaps(args: argparse.Namespace) -> int:
    """Store a build's source maps in the server's database, for its release."""
    from flawless.server.storage.opening import open_storage
    from flawless.server.ingest.sourcemap_upload import BadBuild, build_maps, describe
    from flawless.server.storage.records import StorageUnavailable

    config = _load(args.conf, sys.stderr)
    if config is None:
        return EXIT_FAILURE
    release = args.release.strip().lower()
    if not release:
        print("--release must name the build's commit", file=sys.stderr)
        return EXIT_USAGE
    try:
        maps = build_maps(args.directory, args.url_prefix)
        open_storage(config).save_sourcemaps(release, maps, time.time())
    except (BadBuild, StorageUnavailable, OSError) as error:
        print(f"flawless sourcemaps: {error}", file=sys.stderr)
        return EXIT_FAILURE
    for line in describe(maps):
        print(line)
    print(f"stored {len(maps)} source map{'s' if len(maps) != 1 else ''} for release {release}")
    return EXIT_OK


# -- start and stop -----------------------------------------------------------------------

def command_start(args: argparse.Namespace) -> int:
    """Run the server in the foreground, or as a daemon once it listens."""
    from flawless.server import process

    config = _load(args.conf, sys.stderr, port=args.port, http_port=args.http_port)
    if config is None:
        return EXIT_FAILURE
    if args.daemon:
        return process.start_daemon(config)
    return process.start_foreground(config)


def command_stop(args: argparse.Namespace) -> int:
    """Send SIGTERM to the daemon named by the pid file and wait for it to exit."""
    config = _load(args.conf, sys.stderr)
    if config is None:
        return EXIT_FAILURE
    from flawless.server.process import running_pid

    pid = running_pid(config.pid_file)
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

def _git_checkout(answer: str) -> str:
    """The absolute path of a git repository (a work tree or a bare one), else ValueError."""
    path = os.path.abspath(os.path.expanduser(answer))
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a directory: give the checkout of the code your "
                         "programs run (or set repo_url in flawless.cfg later to have "
                         "flawless clone it)")
    try:
        found = subprocess.run(["git", "-C", path, "rev-parse", "--git-dir"],
                               capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        found = os.path.exists(os.path.join(path, ".git"))
    if not found:
        raise ValueError(f"{path} is not a git repository")
    return path


def _address(answer: str) -> str:
    from flawless.server.core.text import is_valid_address

    if answer and not is_valid_address(answer):
        raise ValueError(f"{answer!r} is not an email address")
    return answer


@dataclass(frozen=True)
class Question:
    """One question of ``flawless configure``: the option it sets and how to check it."""

    name: str
    text: str
    default: str = ""
    check: Optional[Callable[[str], str]] = None   # returns the value to write
    secret: bool = False
    only_with: str = ""                            # asked only when this option was set


QUESTIONS = (
    Question("repo_dir", "Path of the git repository whose code is blamed", ".", _git_checkout),
    Question("email_domain_name", "Email domain of your developers (example.com)"),
    Question("default_contact", "Who gets errors nobody can be blamed for", check=_address),
    Question("smtp_host", "SMTP server as host:port (empty: write mail to a local mailbox)"),
    Question("port", "Port of the JSON-RPC listener", "9028"),
    Question("http_port", "Port of the dashboard", "8080"),
    Question("admin_password", "Password for changes from the dashboard (empty: none allowed)",
             secret=True),
    Question("smtp_user", "SMTP login name (empty: no login)", only_with="smtp_host"),
    Question("smtp_password", "SMTP password", secret=True, only_with="smtp_user"),
    Question("smtp_use_tls", "Use STARTTLS (yes/no)", "yes", only_with="smtp_host"),
)


def _ask(question: str, default: str, read: Callable[[str], str]) -> str:
    try:
        answer = read(f"{question} [{default}]: " if default else f"{question}: ").strip()
    except EOFError:
        answer = ""
    return answer or default


def _secret_reader() -> Callable[[str], str]:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass
    return input


def command_configure(args: argparse.Namespace, read: Callable[[str], str] = input,
                      read_secret: Optional[Callable[[str], str]] = None) -> int:
    """Ask a few questions, checking each answer, then write flawless.cfg (readable by its
    owner only: it may hold passwords) and any missing rule file."""
    path = os.path.abspath(args.conf)
    if os.path.exists(path):
        print(f"{path} exists already; remove it first to configure anew", file=sys.stderr)
        return EXIT_FAILURE
    read_secret = read_secret or (_secret_reader() if read is input else read)
    answers: dict[str, str] = {}
    for question in QUESTIONS:
        if question.only_with and not answers.get(question.only_with):
            continue
        while True:
            answer = _ask(question.text, question.default,
                          read_secret if question.secret else read)
            try:
                OPTIONS_BY_NAME[question.name].parse(answer)
                answer = question.check(answer) if question.check else answer
            except ValueError as error:
                print(f"  {error}")
                continue
            answers[question.name] = answer
            break
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    lines = ["# Written by `flawless configure`; `flawless options` lists every option.",
             "[flawless]"]
    lines += [f"{name} = {value}" for name, value in answers.items() if value != ""]
    lines += ["data_dir_path = data", ""]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
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
    "migrate": command_migrate,
    "sourcemaps": command_sourcemaps,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``flawless`` console script."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
