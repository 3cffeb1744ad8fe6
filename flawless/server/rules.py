"""Rule files (YAML in config_dir_path): load, validate, match, hot reload.

CONTRACT: the dataclasses below are used by routing, alerting, store, mail and web.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional


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
class Rules:
    """Every rule file, parsed. The empty Rules() means no rule files."""

    building_blocks: tuple[LineRule, ...] = ()
    third_party_whitelist: tuple[LineRule, ...] = ()
    known_errors: tuple[KnownError, ...] = ()
    ignored_exceptions: tuple[str, ...] = ()
    watched_files: tuple[Watch, ...] = ()
    email_remapping: Mapping[str, str] = field(default_factory=dict, hash=False)
    disownership: tuple[Disownership, ...] = ()
