"""The parts of Config that the pure core needs, as its own plain values."""

from __future__ import annotations

from flawless.config import Config
from flawless.server.core.model import AlertSettings, RoutingSettings


def routing_settings(config: Config) -> RoutingSettings:
    """Routing settings from flawless.cfg."""
    return RoutingSettings(runtime_dirs=tuple(config.report_runtime_package_directory_names),
                           only_blame_patterns=tuple(config.only_blame_filepaths_matching))


def alert_settings(config: Config) -> AlertSettings:
    """Alerting settings from flawless.cfg."""
    return AlertSettings(report_error_threshold=config.report_error_threshold,
                         report_only_after_minimum_date=config.report_only_after_minimum_date,
                         email_domain_name=config.email_domain_name,
                         ignore_vcs_email_domain=config.ignore_vcs_email_domain,
                         default_contact=config.default_contact)
