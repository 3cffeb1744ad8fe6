"""PURE: one error's counts and alert decisions while a batch of its occurrences is applied.

The processor reads an error's stored state, adds each occurrence of the batch in order
(each one decided by :func:`alerting.decide` against the count it brings the error to) and
writes the result back in the same transaction, so counting and deciding stay exact however
the reports were batched.
"""

from __future__ import annotations

from typing import Optional

from flawless.server.core import alerting, fixes
from flawless.server.core.calendar import day_of
from flawless.server.core.cell_frames import blame_reason, frame_line
from flawless.server.core.model import (AlertSettings, Decision, ErrorRecord, ErrorState,
                                        Occurrence, Resolution, Rules)


class ErrorTally:
    """One error's stored state plus the occurrences of the batch being applied."""

    def __init__(self, state: Optional[ErrorState], when: float,
                 resolution: Optional[Resolution] = None):
        self.error_id = state.error_id if state else 0
        self.count = state.count if state else 0
        self.count_before = self.count                # before this batch
        self.alerted_before = bool(state and state.alerted_at is not None)
        self.first_seen = state.first_seen if state else when
        self.last_seen = state.last_seen if state else when
        self.alerted_at = state.alerted_at if state else None
        self.recipients: tuple[str, ...] = state.recipients if state else ()
        self.days: dict[str, list[float]] = {}       # day -> [first time seen, occurrences]
        self.alerts: list[tuple[Occurrence, Decision, int]] = []  # (what, decision, count)
        self.rejected: list[tuple[str, str]] = []    # recipients dropped: (address, why)
        self.latest: Optional[Occurrence] = None
        # The latest occurrence's decision, or what it takes to make it (counts before and
        # after, alerted before): most repeats alert nobody, so theirs is made only if kept.
        self._decision: Optional[Decision] = None
        self._pending: Optional[tuple[int, int, bool, Rules, AlertSettings,
                                      Optional[alerting.RecipientsMemo]]] = None
        self._day: tuple[float, str] = (-1.0, "")
        self.resolution = resolution
        self.resolution_changed = False

    def add(self, occurrence: Occurrence, when: float, now: float, rules: Rules,
            settings: AlertSettings, memo: Optional[alerting.RecipientsMemo] = None) -> None:
        """Count one occurrence received at ``when``, and queue its alert if it makes one."""
        report, route = occurrence.report, occurrence.route
        count_before, already_alerted = self.count, self.alerted_at is not None
        self.count += report.error_count
        self.latest = occurrence
        if self.resolution is not None and self.resolution.resolved:
            self._pending = None
            self._decision = self._recurrence(occurrence, when, now, rules, settings)
            alerts = self._decision.alert
        else:
            self._decision = None
            self._pending = (count_before, self.count, already_alerted, rules, settings, memo)
            alerts = alerting.counts_alert(route, count_before, self.count, already_alerted,
                                           report.error_threshold, settings)[0]
        if alerts:
            decision = self.decision
            if decision.alert and decision.recipients:
                self.alerted_at = now
                self.recipients = tuple(recipient.email for recipient in decision.recipients)
                self.alerts.append((occurrence, decision, self.count))
            self.rejected.extend(decision.rejected)
        self.first_seen = min(self.first_seen, when)
        self.last_seen = max(self.last_seen, when)
        if self._day[0] != when:
            self._day = (when, day_of(when))
        day = self.days.setdefault(self._day[1], [when, 0])
        day[1] += report.error_count

    @property
    def decision(self) -> Decision:
        """The alert decision of the latest occurrence."""
        if self._decision is None:
            assert self.latest is not None and self._pending is not None
            count_before, count_after, already_alerted, rules, settings, memo = self._pending
            report, route, blame = self.latest.report, self.latest.route, self.latest.blame
            self._decision = alerting.decide(
                route, blame.author_email if blame else None,
                blame.commit_timestamp if blame else None, count_before, count_after,
                already_alerted, report.error_threshold, rules, settings, blame_reason(blame),
                memo)
        return self._decision

    def _recurrence(self, occurrence: Occurrence, when: float, now: float, rules: Rules,
                    settings: AlertSettings) -> Decision:
        """Decide an occurrence of the resolved error; it reopens it (a regression) or is
        counted as coming from an old deployment."""
        resolution = self.resolution
        assert resolution is not None
        report, check = occurrence.report, occurrence.fix_check
        outcome = fixes.recurrence(resolution, check, report.revision)
        if outcome.regression:
            self.resolution = fixes.regressed(resolution, now, check)
        else:
            assert check is not None
            self.resolution = fixes.counted_as_old(resolution, report.error_count, check, when)
        self.resolution_changed = True
        blame = occurrence.blame
        return alerting.decide_recurrence(occurrence.route,
                                          blame.author_email if blame else None, rules,
                                          settings, resolution, outcome, blame_reason(blame))

    def record(self) -> ErrorRecord:
        """The error as it is to be stored, from its latest occurrence."""
        assert self.latest is not None
        report, route, blame = self.latest.report, self.latest.route, self.latest.blame
        blamed = route.blamed
        frame = blamed.frame if blamed else report.traceback[-1]
        explanation = route.explanation + (self.decision.reason,) + tuple(
            f"{recipient.email}: {recipient.reason}" for recipient in self.decision.recipients)
        return ErrorRecord(
            error_id=self.error_id,
            key=route.key,
            line_number=frame_line(frame),
            exception_type=report.exception_type,
            blamed=blame is not None,
            author_name=blame.author_name if blame else None,
            author_email=blame.author_email if blame else None,
            commit_sha=blame.commit_sha if blame else None,
            commit_summary=blame.commit_summary if blame else None,
            commit_timestamp=blame.commit_timestamp if blame else None,
            blame_revision=blame.revision if blame else None,
            blame_at_requested=blame.at_requested_revision if blame else None,
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            last_report=report,
            known=route.known_error is not None,
            alerted_at=self.alerted_at,
            recipients=self.recipients,
            explanation=explanation,
        )
