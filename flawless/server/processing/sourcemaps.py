"""Frames of minified scripts resolved through the source maps of their release.

A frame with a column, in a report with a revision, is looked up among the maps uploaded for
that release (``flawless sourcemaps``) under its script's URL or path. The map (and the
script, when it was uploaded: function names are read from its scopes) is read by Sentry's
``symbolic`` (Rust; it releases the GIL) in the ``db-read`` pool, and kept in a small LRU;
a script without a map is remembered for a while, so a flood of its errors costs one query.

The library was measured against the pure-Python ``ecma426`` on esbuild's 5 MB map of a
real bundle (``bench/sourcemap_libraries.py``): 16x faster to read, 5x less memory held.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Union

from symbolic import SymbolicError
from symbolic.sourcemapcache import SourceMapCache
from twisted.internet import defer
from twisted.logger import Logger

from flawless.report import Frame, Report
from flawless.server.coalesce import Coalescer
from flawless.server.core.lru import Lru
from flawless.server.core.sourcemap import Token, resolution_note, resolved_frame, script_keys
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner

log = Logger()

CACHED_MAPS = 16
MISSING_REMEMBERED_SECONDS = 30.0
_MapKey = tuple[str, tuple[str, ...]]   # (release, the names the script may be stored under)


@dataclass(frozen=True)
class Mapped:
    """A report with its frames resolved, and what was done."""

    report: Report
    notes: tuple[str, ...] = ()
    # (exception, frame index) of each frame whose line a map gave (exception 0 is the
    # reported one, n the chain's n-th, as in Route): blamed only when the repository agrees.
    from_maps: frozenset[tuple[int, int]] = frozenset()


class _Missing:
    """No map (or an unreadable one) for a script, since ``since``."""

    def __init__(self, since: float, reason: str):
        self.since = since
        self.reason = reason


class ReadMap:
    """One script's map, read: positions of the generated script to original ones."""

    def __init__(self, url: str, cache: Any):
        self.url = url
        self._cache = cache

    def lookup(self, line: int, column: int) -> Optional[Token]:
        """The original place of 1-based ``line`` and ``column``, or None."""
        token = self._cache.lookup(line, column, 0)
        if token is None or not token.src:
            return None
        return Token(token.src, token.line, token.col, token.function_name, token.context_line)


def read_map(storage: Storage, release: str, keys: tuple[str, ...]) -> Union[ReadMap, _Missing]:
    """Load and read a stored map (blocking: run it in a pool)."""
    stored = storage.sourcemap(release, keys)
    if stored is None:
        return _Missing(0.0, "")
    try:
        return ReadMap(stored.url, SourceMapCache.from_bytes(stored.generated or b"",
                                                             stored.map))
    except SymbolicError as error:
        return _Missing(0.0, f"the source map of {stored.url} cannot be read: {error}")


class SourceMapResolver:
    """Resolves the frames of reports through stored source maps."""

    def __init__(self, storage: Storage, reader: Runner, clock: Any,
                 cache_size: int = CACHED_MAPS):
        self._storage = storage
        self._reader = reader
        self._clock = clock
        self._maps: Lru[_MapKey, Union[ReadMap, _Missing]] = Lru(cache_size)
        self._loading = Coalescer()

    def _cached(self, key: _MapKey) -> Optional[Union[ReadMap, _Missing]]:
        """The read map (or the known absence of one) under ``key``, if still trusted."""
        known = self._maps.get(key)
        if isinstance(known, _Missing) and \
                self._clock.seconds() - known.since >= MISSING_REMEMBERED_SECONDS:
            return None
        return known

    def _map(self, key: _MapKey) -> defer.Deferred:
        known = self._cached(key)
        if known is not None:
            return defer.succeed(known)
        now = self._clock.seconds()
        return self._loading.run(key, lambda: self._reader.run(
            read_map, self._storage, *key).addCallback(self._remember, key, now))

    def _remember(self, loaded: Union[ReadMap, _Missing], key: _MapKey, now: float
                  ) -> Union[ReadMap, _Missing]:
        if isinstance(loaded, _Missing):
            loaded.since = now
            if loaded.reason:
                log.warn("{reason}", reason=loaded.reason)
        self._maps.put(key, loaded)
        return loaded

    @staticmethod
    def _needed(report: Report) -> list[_MapKey]:
        """The maps that resolving ``report`` needs: one per frame with a column."""
        release = (report.revision or "").strip().lower()
        if not release:
            return []
        return [(release, tuple(script_keys(frame.filename)))
                for traceback in _tracebacks(report) for frame in traceback
                if frame.column_number]

    def resolve_now(self, report: Report) -> Optional[Mapped]:
        """:meth:`resolve` when every map it needs is read already, else None."""
        maps = {}
        for key in self._needed(report):
            known = self._cached(key)
            if known is None:
                return None
            maps[key] = known
        return _resolved(report, maps)

    async def resolve(self, report: Report) -> Mapped:
        """``report`` with each frame that a stored map covers resolved."""
        maps = {key: await self._map(key) for key in dict.fromkeys(self._needed(report))}
        return _resolved(report, maps)


def _tracebacks(report: Report) -> list[tuple[Frame, ...]]:
    """The reported exception's frames, then each chained exception's."""
    return [report.traceback, *(chained.traceback for chained in report.chained)]


def _resolved(report: Report, maps: dict[_MapKey, Union[ReadMap, _Missing]]) -> Mapped:
    """``report`` resolved through ``maps`` (read, or known to be missing)."""
    if not maps:
        return Mapped(report)
    release = (report.revision or "").strip().lower()
    tracebacks = [list(traceback) for traceback in _tracebacks(report)]
    notes: list[str] = []
    from_maps: set[tuple[int, int]] = set()
    for exception, frames in enumerate(tracebacks):
        for index, frame in enumerate(frames):
            if not frame.column_number:
                continue
            read = maps[(release, tuple(script_keys(frame.filename)))]
            if isinstance(read, _Missing):
                if read.reason:
                    notes.append(read.reason)
                continue
            token = read.lookup(frame.line_number, frame.column_number)
            if token is None:
                notes.append(f"the source map of {read.url} maps nothing at line "
                             f"{frame.line_number}, column {frame.column_number}")
                continue
            frames[index] = resolved_frame(frame, token)
            notes.append(resolution_note(frame, frames[index]))
            from_maps.add((exception, index))
    if not from_maps:
        return Mapped(report, tuple(notes))
    chained = tuple(replace(item, traceback=tuple(frames))
                    for item, frames in zip(report.chained, tracebacks[1:]))
    return Mapped(replace(report, traceback=tuple(tracebacks[0]), chained=chained),
                      tuple(dict.fromkeys(notes)), frozenset(from_maps))
