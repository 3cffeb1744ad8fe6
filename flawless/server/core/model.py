"""PURE: the values the server's stages hand each other.

Frozen dataclasses only; this module imports nothing but the standard library and
``flawless.report``, so every stage (and every test of the core) can use them for free.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Mapping, Optional, Protocol, Sequence

from flawless.report import Frame, Report

PACKAGE_DIRS = ("site-packages", "dist-packages")


# -- rules ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineRule:
    """An entry of building_blocks / third_party_whitelist: which lines it matches."""

    filename: str
    function_name: Optional[str] = None
    code_fragment: Optional[str] = None
    source: str = ""  # "known_errors.yaml:12": where the entry was written, for explanations


@dataclass(frozen=True)
class KnownError(LineRule):
    """An entry of known_errors.yaml."""

    min_alert_threshold: Optional[int] = None
    max_alert_threshold: Optional[int] = None
    alert_every_n_occurrences: Optional[int] = None
    email_recipients: tuple[str, ...] = ()
    email_header: Optional[str] = None


@dataclass(frozen=True)
class Watch:
    """An entry of watched_files.yaml."""

    email: str
    filepath: str
    watch_all_errors: bool
    source: str = ""


@dataclass(frozen=True)
class Disownership:
    """An entry of disownership.yaml."""

    email: str
    filepath: str
    designated_email: str
    source: str = ""


@dataclass(frozen=True)
class ChannelRule:
    """An entry of channels.yaml: alerts of errors under ``filepath`` go to ``channels``."""

    filepath: str
    channels: tuple[str, ...]
    source: str = ""


@dataclass(frozen=True)
class Rules:
    """Every rule file, parsed. The empty Rules() means no rule files."""

    building_blocks: tuple[LineRule, ...] = ()
    third_party_whitelist: tuple[LineRule, ...] = ()
    known_errors: tuple[KnownError, ...] = ()
    ignored_exceptions: tuple[str, ...] = ()
    watched_files: tuple[Watch, ...] = ()
    email_remapping: Mapping[str, str] = field(default_factory=dict, hash=False)
    disownership: tuple[Disownership, ...] = ()
    channels: tuple[ChannelRule, ...] = ()
    # where each ignored exception / remapping was written ("file.yaml:LINE"), for explanations
    ignored_exception_sources: Mapping[str, str] = field(default_factory=dict, hash=False,
                                                         compare=False)
    email_remapping_sources: Mapping[str, str] = field(default_factory=dict, hash=False,
                                                       compare=False)


# -- routing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorKey:
    """An error's identity: repository path, function name, source line with whitespace folded."""

    filename: str
    function_name: str
    text: str


@dataclass(frozen=True)
class RoutedFrame:
    """One frame of a report with what routing learnt about it."""

    frame: Frame
    repo_path: Optional[str]  # repository-relative path, None when not in the repository
    rule_path: str            # path used to match rules: repo path, or after site-packages/
    in_app: bool


class ExceptionLike(Protocol):
    """An exception as a report carries it: the report itself, or one of its ``chained``."""

    @property
    def exception_type(self) -> str: ...

    @property
    def traceback(self) -> Sequence[Frame]: ...


@dataclass(frozen=True)
class RoutedException:
    """One exception of a report's chain (``__cause__``/``__context__``) with its frames."""

    exception_type: str
    frames: tuple[RoutedFrame, ...]


@dataclass(frozen=True)
class Route:
    """Where one report goes: dropped, or a blamed frame (or none) and its identity.

    A route is shared by every report with the same routing inputs (the repeats of an
    error): the frames in it are those of the first, so take a report's own frames (its
    locals) from the report, never from its route."""

    frames: tuple[RoutedFrame, ...]     # the reported exception's traceback
    dropped_reason: Optional[str]       # set when whitelisted or ignored: the report is dropped
    blamed_index: Optional[int]         # index of the blamed frame in its exception's frames;
                                        # None = unblamable
    key: ErrorKey
    known_error: Optional[KnownError]
    explanation: tuple[str, ...]        # human-readable, one line per decision taken
    chain: tuple[RoutedException, ...] = ()   # the chained exceptions, nearest first
    blamed_exception: int = 0           # 0: the reported exception; n: chain[n - 1]

    def frames_of(self, exception: int) -> tuple[RoutedFrame, ...]:
        """The frames of the reported exception (0) or of the chain's ``exception``-th."""
        return self.frames if exception == 0 else self.chain[exception - 1].frames

    @property
    def blamed(self) -> Optional[RoutedFrame]:
        """The blamed frame, or None when nothing in the repository is to blame."""
        if self.blamed_index is None:
            return None
        return self.frames_of(self.blamed_exception)[self.blamed_index]


@dataclass(frozen=True)
class RoutingSettings:
    """The options of flawless.cfg that routing needs."""

    runtime_dirs: tuple[str, ...] = PACKAGE_DIRS
    only_blame_patterns: tuple[str, ...] = ()  # regexes, re.search on the repository path


# -- blame ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellBlame:
    """What git blame of a notebook named for a line reported from one of its cells."""

    position: int             # the cell's place among the committed notebook's cells, 1-based
    cell_id: Optional[str]    # the committed cell's id
    line: Optional[int]       # the committed cell's line blamed; None when the line raised has
                              # unsaved edits and the cell's last change is blamed instead
    by_id: bool               # the cell was found by its id (else by the line's hash)
    checked: bool             # the line's hash was compared with the committed line
    one_json_line: bool = False  # the notebook stores the cell's source on one line


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
    line_text: str = ""       # the blamed line as the repository has it ("" for a notebook)
    cell: Optional[CellBlame] = None  # set when the line blamed is in a notebook's cell
    original_path: str = ""   # the line's path in the blamed commit (another after a move)
    explanation: tuple[str, ...] = ()   # how the blame was found, when more than plain blame


# -- fixes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resolution:
    """An error marked resolved (from the dashboard, the API or a ``Fixes:`` trailer),
    perhaps by a commit that fixes it, and what happened to it since."""

    resolved_at: Optional[float]            # None once it regressed or was reopened
    source: str                             # "the dashboard", "Fixes: trailer of 1a2b3c4d5e6f"
    fix_commit: Optional[str] = None        # full sha; None: resolved without naming a fix
    fix_author_name: Optional[str] = None
    fix_author_email: Optional[str] = None
    regressed_at: Optional[float] = None
    regressed_in: Optional[str] = None      # the revision of the report that regressed it
    old_deployments: int = 0                # occurrences since, from revisions without the fix
    old_deployment_revision: Optional[str] = None   # the latest such revision
    old_deployment_seen: Optional[float] = None

    @property
    def resolved(self) -> bool:
        """Whether the error counts as fixed now."""
        return self.resolved_at is not None


@dataclass(frozen=True)
class FixCheck:
    """Whether the revision a report came from contains an error's fix commit (git says)."""

    fix_commit: str
    revision: Optional[str]          # the report's revision, None when the repository lacks it
    contains: Optional[bool]         # None when it cannot be told


@dataclass(frozen=True)
class CommitInfo:
    """A commit of the repository and its author (after .mailmap)."""

    sha: str
    author_name: str
    author_email: str


# -- alerting ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    """One address that gets the alert, and the rule that put it there."""

    email: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """The outcome for one processed occurrence of an error.

    ``recipients`` is who gets the alert, or would get it when ``alert`` is false (shown on the
    dashboard). ``rejected`` is only filled when alerting: the caller tells the default contact.
    """

    alert: bool
    reason: str                                  # why it alerts or does not
    recipients: tuple[Recipient, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()   # (address, why it was dropped)
    email_header: Optional[str] = None
    regression: Optional[str] = None             # the sentence saying how a fix regressed


@dataclass(frozen=True)
class AlertSettings:
    """The options of flawless.cfg that alerting needs."""

    report_error_threshold: int = 3
    report_only_after_minimum_date: Optional[datetime.date] = None
    email_domain_name: str = ""
    ignore_vcs_email_domain: bool = False
    default_contact: str = ""


# -- counting ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Occurrence:
    """A routed, blamed report ready to be counted."""

    report: Report
    route: Route
    blame: Optional[Blame]
    fix_check: Optional[FixCheck] = None   # set when its error was resolved by a fix commit


@dataclass(frozen=True)
class ErrorState:
    """What processing needs to know of an error already stored."""

    error_id: int
    count: int
    first_seen: float
    last_seen: float
    alerted_at: Optional[float]
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class ErrorRecord:
    """One error (grouped by file, function and line text) with its counts and blame."""

    error_id: int
    key: ErrorKey
    line_number: int
    exception_type: str
    blamed: bool
    author_name: Optional[str]
    author_email: Optional[str]
    commit_sha: Optional[str]
    commit_summary: Optional[str]
    commit_timestamp: Optional[float]
    blame_revision: Optional[str]
    blame_at_requested: Optional[bool]
    count: int
    first_seen: float
    last_seen: float
    last_report: Report
    known: bool
    alerted_at: Optional[float]
    recipients: tuple[str, ...]
    explanation: tuple[str, ...]
