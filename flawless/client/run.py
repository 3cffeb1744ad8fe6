"""``flawless run [-conf PATH] -- CMD ARGS...``: run any program with the client installed
in each of its Python processes.

The command replaces this process (``exec``), so it keeps its own pid, signals and exit
status, as a container's entry point must. Its Python processes, and theirs, find this
package's ``bootstrap`` directory first on ``PYTHONPATH``: its ``sitecustomize`` installs the
client (``sys.excepthook`` and ``threading.excepthook``: uncaught exceptions of the program
and of its threads), then runs the ``sitecustomize`` it hides, if any. Where to send comes
from ``-conf`` (the server's own flawless.cfg: its port and first ingest key) or from the
environment (``FLAWLESS_HOSTPORTS``, ``FLAWLESS_KEY``, ...). Python started with ``-I`` or
``-S`` ignores ``PYTHONPATH`` or ``sitecustomize`` and reports nothing.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Mapping, Optional, Sequence

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTENING_FILE = "listening.json"  # written by the server in data_dir_path once it listens
EXIT_USAGE, EXIT_CANNOT_RUN, EXIT_NOT_FOUND = 2, 126, 127
_ANY_ADDRESS = ("", "0.0.0.0", "::")


def server_of(config_path: str) -> tuple[str, Optional[str]]:
    """``host:port`` of the server configured by ``config_path`` and its first ingest key;
    with ``port = 0`` the port it listens on now."""
    from flawless.config import load_config

    config = load_config(config_path)
    port = config.port
    if not port:
        try:
            with open(os.path.join(config.data_dir_path, LISTENING_FILE), encoding="utf-8") as f:
                port = int(json.load(f)["port"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{config_path}: port = 0 and no running server says which "
                             f"port it listens on ({LISTENING_FILE} in data_dir_path)") from None
    host = "127.0.0.1" if config.bind_address in _ANY_ADDRESS else config.bind_address
    host = f"[{host}]" if ":" in host else host
    keys = list(config.ingest_keys)
    return f"{host}:{port}", keys[0] if keys else None


def program_environment(environ: Mapping[str, str], hostports: Optional[str] = None,
                        key: Optional[str] = None) -> dict[str, str]:
    """``environ`` for the program: the bootstrap first on ``PYTHONPATH``, and where to
    send when given."""
    env = dict(environ)
    paths = [BOOTSTRAP_DIR] + [path for path in env.get("PYTHONPATH", "").split(os.pathsep)
                               if path and path != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["FLAWLESS_CLIENT_PATH"] = PACKAGE_PARENT
    if hostports:
        env["FLAWLESS_HOSTPORTS"] = hostports
    if key:
        env["FLAWLESS_KEY"] = key
    return env


def run_program(command: Sequence[str], config_path: Optional[str] = None,
                environ: Mapping[str, str] = os.environ) -> int:
    """Replace this process with ``command``; return an exit status only when it cannot
    run (2: no command or a bad config, 126: not executable, 127: not found)."""
    command = list(command[1:] if command[:1] == ["--"] else command)
    if not command:
        print("flawless run: no command; usage: flawless run [-conf PATH] -- CMD ARGS...",
              file=sys.stderr)
        return EXIT_USAGE
    hostports = key = None
    if config_path is not None:
        try:
            hostports, key = server_of(config_path)
        except ValueError as error:  # ConfigError is one
            print(f"flawless run: {error}", file=sys.stderr)
            return EXIT_USAGE
    env = program_environment(environ, hostports, key)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"flawless run: {command[0]}: command not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as error:
        print(f"flawless run: {command[0]}: {error.strerror}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_CANNOT_RUN  # not reached: exec does not return
