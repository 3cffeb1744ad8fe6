"""PURE: should this occurrence alert, and whom."""

from __future__ import annotations

import datetime
from typing import Optional, Sequence

from flawless.server.core.fixes import Recurrence, fixed_by
from flawless.server.core.model import (AlertSettings, Decision, KnownError, Recipient,
                                        Resolution, Route, Rules)
from flawless.server.core.text import counted, is_valid_address


def author_address(email: str, settings: AlertSettings) -> str:
    """The address for a commit author's email: ``localpart@email_domain_name`` when the
    email has no domain, a dotless one (``bob@laptop``), or the VCS domain is to be ignored."""
    email = email.strip()
    local, _, domain = email.rpartition("@") if "@" in email else (email, "", "")
    if settings.email_domain_name and (settings.ignore_vcs_email_domain or "." not in domain):
        return f"{local}@{settings.email_domain_name}"
    return email


def should_alert(count_before: int, count_after: int, threshold: int,
                 known_error: Optional[KnownError], already_alerted: bool) -> tuple[bool, str]:
    """Whether the occurrences taking the error's count from ``count_before`` to
    ``count_after`` alert, and why. A normal error alerts once, when its count reaches the
    threshold; a known error follows its own entry (see the README)."""
    if known_error is not None:
        return _known_error_alert(count_before, count_after, known_error)
    if already_alerted:
        return False, "already alerted"
    if count_before < threshold <= count_after:
        return True, f"reached the threshold of {counted(threshold, 'occurrence')}"
    if count_after < threshold:
        return False, f"{count_after} of {threshold} occurrences before the alert"
    return False, f"past the threshold of {threshold} occurrences"


def _known_error_alert(count_before: int, count_after: int,
                       known: KnownError) -> tuple[bool, str]:
    where = f"known error ({known.source})"
    low, high, every = (known.min_alert_threshold, known.max_alert_threshold,
                        known.alert_every_n_occurrences)
    if high is not None and count_after > high:
        return False, f"{where}: {count_after} occurrences exceed max_alert_threshold {high}"
    if low is not None and count_before < low <= count_after:
        return True, f"{where}: reached min_alert_threshold {low}"
    if every and count_after // every > count_before // every:
        return True, f"{where}: reached a multiple of alert_every_n_occurrences {every}"
    if low is None and every is None:
        return False, f"{where}: no alert threshold set, never alerts"
    return False, f"{where}: no alert threshold reached at {count_after} occurrences"


def _covers(filepath: str, path: str) -> bool:
    """Whether a rule's file or directory path covers a repository path."""
    return path == filepath or path.startswith(filepath + "/")


def _remap(address: str, rules: Rules) -> tuple[str, Optional[str]]:
    """The address after email_remapping (applied once: by full address, else by local part),
    and the source of the entry that applied."""
    lowered = address.lower()
    for key in (lowered, lowered.partition("@")[0]):
        if key in rules.email_remapping:
            return rules.email_remapping[key], rules.email_remapping_sources.get(
                key, "email_remapping.yaml")
    return address, None


def _author(route: Route, author_email: str, rules: Rules, settings: AlertSettings,
            author_reason: Optional[str]) -> Recipient:
    """The blamed author, or whom the author handed the file to (disownership)."""
    blamed = route.blamed
    assert blamed is not None and blamed.repo_path is not None
    address = author_address(author_email, settings)
    reason = author_reason or \
        f"last changed {blamed.repo_path}:{blamed.frame.line_number} (git blame)"
    names = {address.lower(), _remap(address, rules)[0].lower()}
    for entry in rules.disownership:
        if entry.email.lower() in names and _covers(entry.filepath, blamed.repo_path):
            return Recipient(entry.designated_email,
                             f"{reason}; {address} disowned {entry.filepath} ({entry.source})")
    return Recipient(address, reason)


def _watchers(route: Route, rules: Rules) -> list[Recipient]:
    blamed = route.blamed
    everywhere = [routed.repo_path for number in range(len(route.chain) + 1)
                  for routed in route.frames_of(number) if routed.repo_path is not None]
    here = [blamed.repo_path] if blamed is not None and blamed.repo_path is not None else []
    found = []
    for watch in rules.watched_files:
        paths = everywhere if watch.watch_all_errors else here
        if any(_covers(watch.filepath, path) for path in paths):
            found.append(Recipient(watch.email, f"watches {watch.filepath} ({watch.source})"))
    return found


def _candidates(route: Route, author_email: Optional[str], rules: Rules,
                settings: AlertSettings, author_reason: Optional[str],
                extra: Sequence[Recipient]) -> list[Recipient]:
    found: list[Recipient] = []
    if route.blamed is not None and author_email:
        found.append(_author(route, author_email, rules, settings, author_reason))
    found.extend(extra)
    found.extend(_watchers(route, rules))
    known = route.known_error
    if known is not None:
        found.extend(Recipient(address, f"recipient of the known error ({known.source})")
                     for address in known.email_recipients)
    remapped = []
    for recipient in found:
        address, source = _remap(recipient.email, rules)
        reason = recipient.reason if source is None else \
            f"{recipient.reason}; {recipient.email} remapped ({source})"
        remapped.append(Recipient(address, reason))
    return remapped


def _recipients(route: Route, author_email: Optional[str], rules: Rules,
                settings: AlertSettings, author_reason: Optional[str],
                extra: Sequence[Recipient] = ()
                ) -> tuple[list[Recipient], list[tuple[str, str]]]:
    """Valid, de-duplicated recipients (the first reason kept) and rejected addresses."""
    kept: list[Recipient] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for recipient in _candidates(route, author_email, rules, settings, author_reason, extra):
        if recipient.email.lower() in seen:
            continue
        seen.add(recipient.email.lower())
        if is_valid_address(recipient.email):
            kept.append(recipient)
        else:
            rejected.append((recipient.email, f"not a valid address; {recipient.reason}"))
    if not kept and settings.default_contact:
        why = "no line of the repository to blame" if route.blamed is None else \
            "the author is unknown" if not author_email else "no valid recipient remains"
        kept.append(Recipient(settings.default_contact, f"default contact: {why}"))
    return kept, rejected


class RecipientsMemo:
    """Remembers whom the errors of a route go to: the repeats of an error share one route
    object (the processor reuses routes), so they are answered without working it out again.
    Bounded; answers only for the very route, rules and settings objects it saw."""

    def __init__(self, size: int = 10000):
        self._size = size
        self._known: dict[tuple[int, Optional[str], Optional[str]], tuple] = {}

    def recipients(self, route: Route, author_email: Optional[str], rules: Rules,
                   settings: AlertSettings, author_reason: Optional[str]
                   ) -> tuple[list[Recipient], list[tuple[str, str]]]:
        """What :func:`_recipients` answers."""
        key = (id(route), author_email, author_reason)
        known = self._known.get(key)
        if known is not None and known[0] is route and known[1] is rules \
                and known[2] is settings:
            return known[3]
        if len(self._known) >= self._size:
            self._known.clear()
        answer = _recipients(route, author_email, rules, settings, author_reason)
        self._known[key] = (route, rules, settings, answer)
        return answer


def _too_old(commit_timestamp: Optional[float], settings: AlertSettings) -> Optional[str]:
    minimum = settings.report_only_after_minimum_date
    if minimum is None or commit_timestamp is None:
        return None
    committed = datetime.datetime.fromtimestamp(commit_timestamp, datetime.timezone.utc).date()
    if committed >= minimum:
        return None
    return (f"the blamed commit ({committed.isoformat()}) is older than "
            f"report_only_after_minimum_date {minimum.isoformat()}")


def effective_threshold(report_threshold: Optional[int], settings: AlertSettings) -> int:
    """The threshold an error alerts at: a report may raise ``report_error_threshold`` (a
    noisy path that wants fewer alerts), never lower it (a client must not turn every
    error it sends into a mail)."""
    return max(report_threshold or 0, settings.report_error_threshold)


def counts_alert(route: Route, count_before: int, count_after: int, already_alerted: bool,
                 report_threshold: Optional[int], settings: AlertSettings) -> tuple[bool, str]:
    """Whether the counts alone make these occurrences alert, and why: the first question of
    :func:`decide`, and a cheap one (no recipients, no blame date)."""
    return should_alert(count_before, count_after,
                        effective_threshold(report_threshold, settings), route.known_error,
                        already_alerted)


def decide(route: Route, author_email: Optional[str], commit_timestamp: Optional[float],
           count_before: int, count_after: int, already_alerted: bool,
           report_threshold: Optional[int], rules: Rules, settings: AlertSettings,
           author_reason: Optional[str] = None,
           memo: Optional[RecipientsMemo] = None) -> Decision:
    """Whether the occurrences taking an error's count from ``count_before`` to
    ``count_after`` alert, whom, and why. ``author_email`` and ``commit_timestamp`` come from
    git blame of the blamed line (None when there is none); ``author_reason`` says what the
    blame named when it is more than a line of a file (a notebook's cell)."""
    if route.dropped_reason is not None:
        return Decision(False, "the report is dropped by a rule")
    alert, reason = counts_alert(route, count_before, count_after, already_alerted,
                                 report_threshold, settings)
    too_old = _too_old(commit_timestamp, settings)
    if alert and too_old is not None:
        alert, reason = False, too_old
    recipients, rejected = \
        _recipients(route, author_email, rules, settings, author_reason) if memo is None \
        else memo.recipients(route, author_email, rules, settings, author_reason)
    header = route.known_error.email_header if route.known_error is not None else None
    return Decision(alert, reason, tuple(recipients), tuple(rejected) if alert else (), header)


def decide_recurrence(route: Route, author_email: Optional[str], rules: Rules,
                      settings: AlertSettings, resolution: Resolution, outcome: Recurrence,
                      author_reason: Optional[str] = None) -> Decision:
    """The decision for an occurrence of a resolved error: a regression alerts at once, the
    blamed author and the fix's author; an old deployment is counted without an alert."""
    extra = []
    if outcome.regression and resolution.fix_author_email:
        extra.append(Recipient(author_address(resolution.fix_author_email, settings),
                               f"wrote {fixed_by(resolution)}, and it regressed"))
    recipients, rejected = _recipients(route, author_email, rules, settings, author_reason,
                                       extra)
    header = route.known_error.email_header if route.known_error is not None else None
    return Decision(outcome.regression, outcome.reason, tuple(recipients),
                    tuple(rejected) if outcome.regression else (), header,
                    outcome.detail if outcome.regression else None)


def explain(route: Route, decision: Decision) -> str:
    """Why a report was routed and alerted as it was, one decision per line."""
    lines = list(route.explanation)
    lines.append(("alert: " if decision.alert else "no alert: ") + decision.reason)
    verb = "to" if decision.alert else "would go to"
    lines.extend(f"{verb} {recipient.email}: {recipient.reason}"
                 for recipient in decision.recipients)
    lines.extend(f"rejected {address}: {why}" for address, why in decision.rejected)
    return "\n".join(lines)
