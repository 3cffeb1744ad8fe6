"""`flawless check --explain REPORT.json`: how one report would be routed, sending nothing."""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Optional

from flawless.config import Config
from flawless.report import Report
from flawless.server.core import alerting, fixes, routing
from flawless.server.core.cell_frames import blame_note, blame_reason, notebook_cell
from flawless.server.core.model import Blame, ErrorKey, FixCheck, Resolution
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
            f"({when:%Y-%m-%d}) {blame.commit_summary}", *blame.explanation]


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
                                timeout=config.git_timeout_seconds,
                                detect_moves=config.blame_detect_moves)
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
                                              blamed.frame.text, blamed.frame.function_name)
            blame = replace(blame, at_requested_revision=exact)
        except (BlameFailed, RepositoryUnavailable) as error:
            problem = str(error)
    lines = _blame_lines(blame, problem)
    settings = alert_settings(config)
    author, reason = (blame.author_email, blame_reason(blame)) if blame else (None, None)
    resolution = None
    if repository is not None and sha is not None and route.dropped_reason is None:
        try:
            resolution = _trailer_fix(repository, route.key)
        except RepositoryUnavailable as error:
            lines.append(f"Fixes: trailers cannot be read: {error}")
    if resolution is None or repository is None or sha is None:
        decision = alerting.decide(
            route, author, blame.commit_timestamp if blame else None, 0, report.error_count,
            False, report.error_threshold, rules, settings, reason)
        return "\n".join([*lines, alerting.explain(route, decision)])
    fix = resolution.fix_commit
    assert fix is not None
    check = FixCheck(fix, sha if exact else None, repository.contains(sha, fix) if exact else None)
    decision = alerting.decide_recurrence(route, author, rules, settings, resolution,
                                          fixes.recurrence(resolution, check, report.revision),
                                          reason)
    lines.append(f"fixed: {fixes.fixed_by(resolution)} names this error (read from the "
                 "repository alone: a resolution or reopening on the dashboard is not)")
    return "\n".join([*lines, alerting.explain(route, decision)])


def _trailer_fix(repository: Repository, key: ErrorKey) -> Optional[Resolution]:
    """The resolution the newest ``Fixes:`` trailer naming the error at the tip gives it."""
    tip, _ = repository.resolve_revision(None)
    for commit, values in repository.fix_log(tip):
        if key in fixes.error_links(values):
            return Resolution(resolved_at=0.0, source=f"a Fixes: trailer in {commit.sha[:12]}",
                              fix_commit=commit.sha, fix_author_name=commit.author_name,
                              fix_author_email=commit.author_email)
    return None
