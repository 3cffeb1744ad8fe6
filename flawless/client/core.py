"""The client: settings, and the path of one error from the application to the sender.

On the application's thread: claim the exception (so it is reported once however many
wrappers and hooks see it), ask the aggregator whether this occurrence is sent, and only
then capture it, with the current scope (tags, context, user id, request). On the sender
thread: resolve ``..`` in paths, fill in the revision, scrub, serialise, and let
``before_send`` have the last word.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Iterator, Mapping, Optional

from flawless.client import scope as scopes
from flawless.client.aggregation import Aggregator
from flawless.client.capture import (CaptureOptions, Captured, CellDescriber, ExcInfo,
                                     PrecedingStack, capture, capture_message, grouping_key,
                                     message_grouping_key)
from flawless.client.guard import swallowed
from flawless.client.paths import normalise
from flawless.client.revision import revision_of_frames
from flawless.client.scope import RequestSource
from flawless.client.scrub import MASK, Scrubber
from flawless.client.transport import Transport, TransportOptions
from flawless.report import Frame, Report, RequestInfo, parse_report, report_to_dict

BeforeSend = Callable[[dict], Optional[dict]]

_CLAIM_ATTRIBUTE = "__flawless_reported__"
# Exceptions refusing attributes (__slots__) are remembered by id; bounded, so an id reused
# long after is not mistaken for a reported exception for long.
_claimed_ids: deque = deque(maxlen=256)

default_scrubber = Scrubber()


def claim(exception: BaseException) -> bool:
    """Mark ``exception`` as reported; False when something already reported it."""
    try:
        if getattr(exception, _CLAIM_ATTRIBUTE, False):
            return False
        setattr(exception, _CLAIM_ATTRIBUTE, True)
        return True
    except Exception:  # __slots__, or a hostile __getattr__ / __setattr__
        if id(exception) in _claimed_ids:
            return False
        _claimed_ids.append(id(exception))
        return True


def _source_files(report: Report) -> Iterator[str]:
    """The file of each frame's code, innermost first: a notebook cell's is its notebook."""
    for frame in reversed(report.traceback):
        cell = frame.cell
        yield cell.notebook if cell is not None and cell.notebook else frame.filename


def split_hostports(text: str) -> tuple[str, ...]:
    """``"a:1, b:2"`` -> ``("a:1", "b:2")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class ClientSettings:
    """Everything the user can configure.

    With no hostports nothing is sent: reports are dropped and counted
    (``stats()["dropped_unconfigured"]``), so a library using the client never talks to a
    server its user did not name.
    """

    hostports: tuple[str, ...] = ()
    key: Optional[str] = None
    revision: Optional[str] = None
    hostname: Optional[str] = None
    flush_timeout: float = 2.0
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    transport: TransportOptions = field(default_factory=TransportOptions)
    send_first: int = 3               # occurrences of one error sent one by one
    hold_back_interval: float = 600.0  # held-back occurrences are sent at least this often
    mask: str = MASK                  # what replaces each masked value
    # Sees each report last (its wire form, scrubbed) on the sender thread; returns it,
    # changed or not, or None to drop it.
    before_send: Optional[BeforeSend] = None


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> ClientSettings:
    """Settings from ``FLAWLESS_HOSTPORTS``, ``FLAWLESS_KEY``, ``FLAWLESS_REVISION`` and
    ``FLAWLESS_HOSTNAME``."""
    return ClientSettings(
        hostports=split_hostports(environ.get("FLAWLESS_HOSTPORTS", "")),
        key=environ.get("FLAWLESS_KEY") or None,
        revision=environ.get("FLAWLESS_REVISION") or None,
        hostname=environ.get("FLAWLESS_HOSTNAME") or None,
    )


class Client:
    """Captures exceptions and hands them to a background :class:`Transport`."""

    def __init__(self, settings: ClientSettings, scrubber: Scrubber = default_scrubber) -> None:
        self.settings = settings
        self.scrubber = scrubber
        # Set by integrations that know more about the code running now (a notebook cell).
        self.ambient_context: Optional[dict[str, Any]] = None
        # Set by the IPython extension: where a frame's line lies in a notebook cell.
        self.describe_cell: Optional[CellDescriber] = None
        self.dropped_unconfigured = 0
        self.aggregator = Aggregator(settings.send_first, settings.hold_back_interval)
        self.transport = Transport(settings.hostports, settings.key, self._prepare,
                                   settings.transport,
                                   periodic=self.aggregator.due)

    def set_hostports(self, hostports: tuple[str, ...]) -> None:
        """Send to these servers from now on."""
        self.settings = replace(self.settings, hostports=tuple(hostports))
        self.transport.set_hostports(self.settings.hostports)

    def record(self, exc_info: ExcInfo, preceding_stack: PrecedingStack = None,
               hostname: Optional[str] = None, error_threshold: Optional[int] = None,
               additional_info: Optional[str] = None,
               context: Optional[Mapping[str, Any]] = None,
               request: Optional[RequestSource] = None,
               user_id: Optional[str] = None, level: str = "error") -> bool:
        """Report an exception unless already reported; True when it was queued or held back
        for aggregation. ``request`` describes the HTTP request being served (default: the
        scope's); ``user_id`` overrides the scope's."""
        exception_type, value, tb = exc_info
        if value is not None and not claim(value):
            return False
        if not self.transport.endpoints:
            self.dropped_unconfigured += 1
            return False
        key = grouping_key(exception_type, tb if tb is not None else
                           getattr(value, "__traceback__", None))
        error_count = self._occurrence(key)
        if error_count is None:
            return True
        captured = capture(exc_info, self.settings.capture, self.scrubber.is_sensitive_name,
                           preceding_stack=preceding_stack, mask=self.settings.mask,
                           describe_cell=self.describe_cell, level=level,
                           **self._circumstances(hostname, error_count, error_threshold,
                                                 additional_info, context, request, user_id))
        self.aggregator.remember(key, captured)
        return self.transport.submit(captured)

    def record_message(self, text: str, level: str, stack: PrecedingStack,
                       request: Optional[RequestSource] = None,
                       user_id: Optional[str] = None) -> bool:
        """Report ``text`` at ``stack`` (a live frame: its innermost frames carry their
        locals; or frame summaries), grouped by the call site whatever the text."""
        if not self.transport.endpoints:
            self.dropped_unconfigured += 1
            return False
        key = message_grouping_key(level, stack)
        error_count = self._occurrence(key)
        if error_count is None:
            return True
        captured = capture_message(text, stack, self.settings.capture,
                                   self.scrubber.is_sensitive_name, mask=self.settings.mask,
                                   describe_cell=self.describe_cell, level=level,
                                   **self._circumstances(
                                       None, error_count, None, None, None, request, user_id))
        self.aggregator.remember(key, captured)
        return self.transport.submit(captured)

    def _occurrence(self, key: Hashable) -> Optional[int]:
        """The aggregator's count for one occurrence of ``key``; what it forgot to follow
        ``key`` is sent now."""
        error_count = self.aggregator.occurrence(key)
        for released in self.aggregator.evicted():
            self.transport.submit(released)
        return error_count

    def _circumstances(self, hostname: Optional[str], error_count: int,
                       error_threshold: Optional[int], additional_info: Optional[str],
                       context: Optional[Mapping[str, Any]], request: Optional[RequestSource],
                       user_id: Optional[str]) -> dict[str, Any]:
        """The report's fields around the error: configuration, then the current scope,
        then what the caller said."""
        scope = scopes.current()
        merged = {**scope.context, **(self.ambient_context or {}), **(context or {})}
        return {"hostname": hostname or self.settings.hostname,
                "revision": self.settings.revision, "error_count": error_count,
                "error_threshold": error_threshold, "additional_info": additional_info,
                "context": merged or None, "tags": dict(scope.tags) or None,
                "user_id": user_id if user_id is not None else scope.user_id,
                "request": _described(request or scope.request)}

    def _prepare(self, captured: Captured) -> Optional[dict]:
        """Sender thread: paths, revision, scrubbing, wire form, ``before_send``."""
        report = normalise_paths(captured.report)
        if report.revision is None:
            revision = revision_of_frames(_source_files(report))
            report = replace(report, revision=revision)
        data = report_to_dict(self.scrubber.scrub_report(report, captured.secrets,
                                                         self.settings.mask))
        before_send = self.settings.before_send
        if before_send is None:
            return data
        try:
            changed = before_send(data)
            # What the callback returns is checked and bounded like any report.
            return report_to_dict(parse_report(changed)) if changed is not None else None
        except Exception:  # dropped: sending what the callback meant to change could leak
            swallowed("before_send")
            return None

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send held-back occurrences and wait at most ``timeout`` (default: the configured
        flush bound) until everything queued is sent."""
        for released in self.aggregator.due(everything=True):
            self.transport.submit(released)
        return self.transport.flush(self.settings.flush_timeout if timeout is None else timeout)

    def close(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout``, then stop sending."""
        flushed = self.flush(timeout)
        self.transport.close(0)
        return flushed

    def stats(self) -> dict[str, int]:
        """Counters: submitted, sent, dropped (queue full, unconfigured, by before_send),
        rejected, ..."""
        return {**self.transport.stats, "dropped_unconfigured": self.dropped_unconfigured}


def _described(request: Optional[RequestSource]) -> Optional[RequestInfo]:
    """The request, described now (it changes once served); None when that fails."""
    if request is None:
        return None
    try:
        return request()
    except Exception:
        swallowed("describing the request")
        return None


def _normalised_frames(frames: tuple[Frame, ...]) -> tuple[Frame, ...]:
    return tuple(replace(frame, filename=normalise(frame.filename)) for frame in frames)


def normalise_paths(report: Report) -> Report:
    """``report`` with ``..`` resolved in every frame's path (the server maps paths to the
    repository and refuses those that climb)."""
    return replace(report, traceback=_normalised_frames(report.traceback),
                   chained=tuple(replace(item, traceback=_normalised_frames(item.traceback))
                                 for item in report.chained))
