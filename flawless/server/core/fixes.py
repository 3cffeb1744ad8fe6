"""PURE: fixes by revision. An error marked resolved that comes back is a regression when
the revision it came from contains the fix, and an old deployment still running when not.

Fixes are named from the dashboard, the API, or by ``Fixes: <error link>`` trailers in the
repository's commit messages (the link is the one every alert carries).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace
from typing import Iterable, Optional

from flawless.server.core.model import ErrorKey, FixCheck, Resolution
from flawless.server.core.text import fold_whitespace

ERROR_PAGES = ("/view_traceback", "/api/error")
MAX_LINK_CHARS = 8192
MAX_LINKS_PER_COMMIT = 32


def error_link(value: str) -> Optional[ErrorKey]:
    """The error a dashboard link names (``.../view_traceback?filename=&function_name=
    &text=...``, as in every alert), or None when ``value`` is no such link."""
    value = value.strip().strip("<>")
    if not value or len(value) > MAX_LINK_CHARS:
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        if not parts.path.endswith(ERROR_PAGES):
            return None
        query = urllib.parse.parse_qs(parts.query, max_num_fields=16)
    except ValueError:   # a broken URL, or more fields than any link of ours has
        return None

    def first(name: str) -> str:
        return query.get(name, [""])[0]

    if not first("filename").strip() or not first("function_name").strip():
        return None
    return ErrorKey(first("filename"), first("function_name"), fold_whitespace(first("text")))


def error_links(values: Iterable[str]) -> list[ErrorKey]:
    """The errors named by a commit's ``Fixes:`` trailer values (other values are ignored:
    projects write commit shas and issue numbers there too), each once."""
    found: list[ErrorKey] = []
    for value in values:
        key = error_link(value)
        if key is not None and key not in found:
            found.append(key)
        if len(found) >= MAX_LINKS_PER_COMMIT:
            break
    return found


@dataclass(frozen=True)
class Recurrence:
    """What an occurrence of a resolved error means."""

    regression: bool          # True: it alerts and reopens; False: an old deployment, counted
    detail: str               # why, in a sentence

    @property
    def reason(self) -> str:
        """The decision's reason: ``regression: ...`` or ``old deployment: ...``."""
        return ("regression: " if self.regression else "old deployment: ") + self.detail


def fixed_by(resolution: Resolution) -> str:
    """``the fix 1a2b3c4d5e6f by Bob (Fixes: trailer of 1a2b3c4d5e6f)``, or how it was
    resolved without one."""
    if resolution.fix_commit is None:
        return f"resolved from {resolution.source} without naming a fix commit"
    author = f" by {resolution.fix_author_name}" if resolution.fix_author_name else ""
    return f"the fix {resolution.fix_commit[:12]}{author} ({resolution.source})"


def recurrence(resolution: Resolution, check: Optional[FixCheck],
               reported_revision: Optional[str]) -> Recurrence:
    """Whether an occurrence of the resolved error is a regression or an old deployment.

    Only a revision known not to contain the fix commit is an old deployment. Without a
    fix commit, or when the report's revision is unknown to the repository, nothing can
    tell the two apart: it counts as a regression, which is never missed that way.
    """
    fix = fixed_by(resolution)
    if resolution.fix_commit is None:
        return Recurrence(True, f"it happened again after it was {fix}")
    if check is None or check.fix_commit != resolution.fix_commit or check.contains is None:
        asked = f" ({reported_revision})" if reported_revision else ""
        why = "names no revision" if not reported_revision else \
            f"names a revision{asked} the repository does not know"
        return Recurrence(True, f"it happened again after {fix}, and the report {why}, so it "
                                "cannot be told from an old deployment")
    assert check.revision is not None
    if check.contains:
        return Recurrence(True, f"regressed in {check.revision[:12]}, which contains {fix}")
    return Recurrence(False, f"{check.revision[:12]} does not contain {fix}; counted, no "
                             "alert")


def regressed(resolution: Resolution, now: float, check: Optional[FixCheck]) -> Resolution:
    """The resolution after a regression: open again, and where it regressed."""
    revision = check.revision if check is not None else None
    return replace(resolution, resolved_at=None, regressed_at=now, regressed_in=revision)


def counted_as_old(resolution: Resolution, occurrences: int, check: FixCheck,
                   when: float) -> Resolution:
    """The resolution after occurrences from an old deployment: still resolved, counted."""
    return replace(resolution, old_deployments=resolution.old_deployments + occurrences,
                   old_deployment_revision=check.revision,
                   old_deployment_seen=max(when, resolution.old_deployment_seen or when))
