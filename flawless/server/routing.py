"""PURE: which frames are in-app, which frame is to blame, and the error's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from flawless.report import Frame
from flawless.server.rules import KnownError


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


@dataclass(frozen=True)
class Route:
    """Where one report goes: dropped, or a blamed frame (or none) and its identity."""

    frames: tuple[RoutedFrame, ...]
    dropped_reason: Optional[str]       # set when whitelisted or ignored: the report is dropped
    blamed_index: Optional[int]         # index into frames of the blamed frame; None = unblamable
    key: ErrorKey
    known_error: Optional[KnownError]
    explanation: tuple[str, ...]        # human-readable, one line per decision taken

    @property
    def blamed(self) -> Optional[RoutedFrame]:
        """The blamed frame, or None when nothing in the repository is to blame."""
        return None if self.blamed_index is None else self.frames[self.blamed_index]
