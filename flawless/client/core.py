"""The client: settings, and the path of one error from the application to the sender.

On the application's thread: claim the exception (so it is reported once however many
wrappers and hooks see it), ask the aggregator whether this occurrence is sent, and only
then capture it. On the sender thread: fill in the revision, scrub, serialise.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping, Optional

from flawless.client.aggregation import Aggregator
from flawless.client.capture import (CaptureOptions, Captured, CellDescriber, ExcInfo,
                                     PrecedingStack, capture, grouping_key)
from flawless.client.revision import revision_of_frames
from flawless.client.scrub import Scrubber
from flawless.client.transport import Transport, TransportOptions
from flawless.report import Report, report_to_dict

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
    except (AttributeError, TypeError):
        if id(exception) in _claimed_ids:
            return False
        _claimed_ids.append(id(exception))
        return True


def is_reported(exception: BaseException) -> bool:
    """True when ``exception`` was already claimed by a report."""
    return bool(getattr(exception, _CLAIM_ATTRIBUTE, False)) or id(exception) in _claimed_ids


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
               context: Optional[Mapping[str, Any]] = None) -> bool:
        """Report an exception unless already reported; True when it was queued or held back
        for aggregation."""
        exception_type, value, tb = exc_info
        if value is not None and not claim(value):
            return False
        if not self.transport.endpoints:
            self.dropped_unconfigured += 1
            return False
        key = grouping_key(exception_type, tb if tb is not None else
                           getattr(value, "__traceback__", None))
        error_count = self.aggregator.occurrence(key)
        if error_count is None:
            return True
        if self.ambient_context:
            context = {**self.ambient_context, **(context or {})}
        captured = capture(exc_info, self.settings.capture, self.scrubber.is_sensitive_name,
                           preceding_stack=preceding_stack,
                           hostname=hostname or self.settings.hostname,
                           revision=self.settings.revision, error_count=error_count,
                           error_threshold=error_threshold, additional_info=additional_info,
                           context=context, describe_cell=self.describe_cell)
        self.aggregator.remember(key, captured)
        return self.transport.submit(captured)

    def _prepare(self, captured: Captured) -> dict:
        """Sender thread: revision, scrubbing, wire form."""
        report = captured.report
        if report.revision is None:
            revision = revision_of_frames(_source_files(report))
            report = replace(report, revision=revision)
        return report_to_dict(self.scrubber.scrub_report(report, captured.secrets))

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
        """Counters: submitted, sent, dropped (queue full, unconfigured), rejected, ..."""
        return {**self.transport.stats, "dropped_unconfigured": self.dropped_unconfigured}
