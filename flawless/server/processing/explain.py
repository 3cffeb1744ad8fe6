"""`flawless check --explain REPORT.json`: how one report would be routed, sending nothing."""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Optional

from flawless.config import Config
from flawless.report import Report
from flawless.server.core import alerting, routing
from flawless.server.core.cell_frames import blame_note, blame_reason, notebook_cell
from flawless.server.core.model import Blame
from flawless.server.core.routing import RepoIndex
from flawless.server.git.notebooks import blame_cell
from flawless.server.git.repository import BlameFailed, Repository, RepositoryUnavailable
from flawless.server.rules.loading import load_rules
from flawless.server.settings import alert_settings, routing_settings


def _blame_lines(blame: Optional[Blame], problem: Optional[str]) -> list[str]:
    if problem:
        return [f"git blame: {problem}"]
    if blame is None:
        return []
    when = datetime.datetime.fromtimestamp(blame.commit_timestamp, datetime.timezone.utc)
    where = "the report's revision" if blame.at_requested_revision else "HEAD (revision unknown)"
    return [f"git blame at {where} {blame.revision[:12]}: {blame.author_name} "
            f"<{blame.author_email}>, commit {blame.commit_sha[:12]} "
            f"({when:%Y-%m-%d}) {blame.commit_summary}"]


def explain_report(config: Config, report: Report) -> str:
    """The routing and alert decision for ``report`` as text, as if it were its first time."""
    rules = load_rules(config.config_dir_path)
    index = RepoIndex.from_paths(())
    repository = None
    problem: Optional[str] = None
    sha = None
    exact = False
    if config.repo_dir:
        repository = Repository(config.repo_dir, git_cli_path=config.git_cli_path,
                                timeout=config.git_timeout_seconds)
        try:
            sha, exact = repository.resolve_revision(report.revision)
            index = RepoIndex.from_paths(repository.paths_at(sha))
        except RepositoryUnavailable as error:
            problem = f"repository unavailable: {error}"
    route = routing.route(report, index, rules, routing_settings(config))
    blame = None
    blamed = route.blamed
    if repository is not None and sha is not None and blamed is not None \
            and blamed.repo_path is not None and route.dropped_reason is None:
        cell = notebook_cell(blamed.frame)
        try:
            if cell is not None:
                blame = blame_cell(repository, blamed.repo_path, cell, sha)
                route = replace(route, explanation=route.explanation + (
                    blame_note(blame, cell),))
            else:
                blame = repository.blame_line(blamed.repo_path, blamed.frame.line_number, sha,
                                              blamed.frame.text)
            blame = replace(blame, at_requested_revision=exact)
        except (BlameFailed, RepositoryUnavailable) as error:
            problem = str(error)
    decision = alerting.decide(
        route, blame.author_email if blame else None, blame.commit_timestamp if blame else None,
        0, report.error_count, False, report.error_threshold, rules, alert_settings(config),
        blame_reason(blame))
    return "\n".join([*_blame_lines(blame, problem), alerting.explain(route, decision)])
