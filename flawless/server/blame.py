"""GitPython blame: bounded concurrency, cache, .mailmap, ignore-revs, clone and fetch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Blame:
    """Who last touched one line, at which commit."""

    path: str                 # repository-relative
    line_number: int          # line number in the revision blamed
    author_name: str
    author_email: str         # after .mailmap
    commit_sha: str
    commit_summary: str
    commit_timestamp: float   # author date, seconds since epoch
    revision: str             # sha of the revision the blame ran at
    at_requested_revision: bool  # False when the report's revision was unknown and HEAD was used
