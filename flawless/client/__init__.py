"""The flawless client: report a program's exceptions to a flawless server.

Standard library only; importing it starts no thread and opens no socket.

One-line set-up::

    import flawless.client
    flawless.client.install(hostports=["flawless.example.com:9028"])

or, with no arguments, from the environment: ``FLAWLESS_HOSTPORTS`` (comma-separated
``host:port``), ``FLAWLESS_KEY`` (ingest key, sent as ``Authorization: Bearer``),
``FLAWLESS_REVISION`` (the commit the program runs; when unset it is read from the ``.git``
directory of the code that raised) and ``FLAWLESS_HOSTNAME`` (never guessed: no hostname is
sent unless configured).

When no hostport is configured nothing is sent anywhere: reports are dropped and counted in
``stats()["dropped_unconfigured"]``. Sending never blocks the program (see ``transport``);
at exit what is queued is flushed within ``flush_timeout`` seconds (2 by default).

No function of this module raises into the program once installed: a failure of the
client is logged at debug level on the ``flawless.client`` logger and swallowed.
"""

from __future__ import annotations

import atexit
import sys
import threading
from dataclasses import replace
from typing import Any, Iterable, Optional, Union

from flawless.client import scope as _scope
from flawless.client.capture import BoundedRepr, ExcInfo, PrecedingStack
from flawless.client.core import (Client, ClientSettings, default_scrubber, split_hostports,
                                  settings_from_environment)
from flawless.client.guard import never_raises
from flawless.report import LEVELS

__all__ = ["Client", "ClientSettings", "flush", "get_client", "install", "install_scrubbers",
           "record_error", "record_message", "remove_scrubbers", "set_context",
           "set_hostports", "set_tag", "set_user", "stats", "uninstall"]

_client: Optional[Client] = None
_lock = threading.Lock()
_exit_flush_registered = False


def _hostports(hostports: Union[str, Iterable[str]]) -> tuple[str, ...]:
    return split_hostports(hostports) if isinstance(hostports, str) else tuple(hostports)


def _use(client: Client) -> Client:
    global _client, _exit_flush_registered
    previous, _client = _client, client
    if not _exit_flush_registered:
        atexit.register(_flush_at_exit)
        _exit_flush_registered = True
    if previous is not None:
        previous.close()
    return client


def get_client() -> Client:
    """The client every integration reports through, configured from the environment
    unless :func:`install` configured it."""
    if _client is not None:
        return _client
    with _lock:
        return _client if _client is not None else _use(Client(settings_from_environment()))


def install(hostports: Union[str, Iterable[str], None] = None, key: Optional[str] = None,
            revision: Optional[str] = None, excepthook: bool = True, threads: bool = True,
            *, hostname: Optional[str] = None, library_locals: Optional[bool] = None,
            **settings: Any) -> Client:
    """Configure the client (unset arguments come from the environment) and install the
    ``sys.excepthook`` and ``threading.excepthook`` integrations. Other keyword arguments
    are fields of :class:`ClientSettings` (``flush_timeout``, ``mask``, ``before_send``,
    ``capture``, ...); ``library_locals=True`` also captures the locals of frames of the
    standard library and of installed packages."""
    from flawless.client import hooks

    base = settings_from_environment()
    chosen = replace(
        base,
        hostports=_hostports(hostports) if hostports is not None else base.hostports,
        key=key if key is not None else base.key,
        revision=revision if revision is not None else base.revision,
        hostname=hostname if hostname is not None else base.hostname,
        **settings)
    if library_locals is not None:
        chosen = replace(chosen, capture=replace(chosen.capture, library_locals=library_locals))
    with _lock:
        client = _use(Client(chosen))
    if excepthook:
        hooks.install_excepthook()
    if threads:
        hooks.install_threading_excepthook()
    return client


def uninstall(timeout: float = 0.0) -> None:
    """Remove the hooks, flush for at most ``timeout`` seconds and forget the configuration."""
    global _client
    from flawless.client import hooks

    hooks.uninstall_excepthook()
    hooks.uninstall_threading_excepthook()
    with _lock:
        previous, _client = _client, None
    if previous is not None:
        previous.close(timeout)


def set_hostports(hostports: Union[str, Iterable[str]]) -> None:
    """Send reports to these ``host:port`` servers, the first preferred, the others as
    fail-over."""
    get_client().set_hostports(_hostports(hostports))


def install_scrubbers(*patterns: str) -> None:
    """Also mask values whose local, attribute or key name matches any of these regular
    expressions (on top of the default patterns)."""
    default_scrubber.add_key_patterns(*patterns)


def remove_scrubbers(*names: str) -> None:
    """Stop masking: each name is a key pattern (a default such as ``"session"``, or one
    added by :func:`install_scrubbers`) or a kind of value masked wherever it appears
    (``"emails"``, ``"card_numbers"``, ``"tokens"``, ``"jwts"``, ``"private_keys"``,
    ``"url_credentials"``, ``"assignments"``, ``"home_directories"``). Raises ValueError,
    changing nothing, when a name is neither."""
    default_scrubber.remove(*names)


@never_raises
def record_error(hostname: Optional[str], exc_info: ExcInfo,
                 preceding_stack: PrecedingStack = None, error_threshold: Optional[int] = None,
                 additional_info: Optional[str] = None) -> None:
    """Report ``exc_info`` (``sys.exc_info()``) without waiting; never raises.

    ``hostname`` None means the configured one, if any. ``preceding_stack`` is the stack
    above the frame that caught the exception: ``traceback.extract_stack()`` output or a live
    frame. An exception already reported (by a wrapper, a hook or an integration) is not
    reported again. Within a request served by an integration, the request goes with it.
    """
    get_client().record(exc_info, preceding_stack, hostname, error_threshold, additional_info)


@never_raises
def record_message(text: str, level: str = "info") -> None:
    """Report ``text`` with the caller's stack (its innermost frames' locals included),
    at ``level`` (``"error"``, ``"warning"`` or ``"info"``); repeats from one call site are
    one error, whatever the text. Never raises."""
    chosen = level if level in LEVELS else "error"
    get_client().record_message(str(text), chosen, sys._getframe(1))


@never_raises
def set_tag(name: str, value: Optional[str]) -> None:
    """Send ``name: value`` with every report of this thread, task or request from now on
    (``None`` removes it). Scrubbed like everything else."""
    _scope.set_tag(name, value)


@never_raises
def set_context(name: str, value: Any) -> None:
    """Send ``value`` (a mapping: as ``name.key`` entries) in the context of every report of
    this thread, task or request from now on (``None`` removes it). Values that are not
    strings, numbers or booleans are sent as bounded reprs; values of secret-looking names
    are masked."""
    client = get_client()
    bounded = BoundedRepr(client.settings.capture, client.scrubber.is_sensitive_name,
                          client.settings.mask)

    def describe(key: object, item: Any) -> str:
        if client.scrubber.is_sensitive_name(key):
            return client.settings.mask
        return item if isinstance(item, str) else bounded(item)

    _scope.set_context(name, value, describe)


@never_raises
def set_user(id: Any = None, **ignored: Any) -> None:  # noqa: A002 - the name users know
    """Send this user id with every report of this thread, task or request from now on
    (``None`` forgets it). Only the id: other keyword arguments (``email``, ``ip_address``,
    ...) are accepted and never sent."""
    _scope.set_user(id)


@never_raises
def flush(timeout: Optional[float] = None) -> bool:
    """Wait at most ``timeout`` seconds (default: the flush bound) until queued reports are
    sent; True when nothing is left."""
    return get_client().flush(timeout)


def stats() -> dict[str, int]:
    """Counters of the client: submitted, sent, dropped (queue full, unconfigured), ..."""
    return get_client().stats()


def _flush_at_exit() -> None:
    if _client is not None:
        _client.close()
