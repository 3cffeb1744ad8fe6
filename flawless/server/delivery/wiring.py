"""The delivery stage built from the Config: what renders entries, how they are queued
within the hourly bounds, and the channels that deliver them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from flawless.config import Config
from flawless.server.core.bounds import HourlyBounds
from flawless.server.core.channels import url_destination
from flawless.server.core.redaction import secret_url_parts
from flawless.server.delivery.channels import Channel
from flawless.server.delivery.channels.email import EmailChannel, SmtpSettings
from flawless.server.delivery.channels.github import GitHubApi
from flawless.server.delivery.channels.gitlab import GitLabApi
from flawless.server.delivery.channels.http import HttpClient
from flawless.server.delivery.channels.issues import IssueChannel
from flawless.server.delivery.channels.slack import SlackChannel
from flawless.server.delivery.channels.webhook import WebhookChannel
from flawless.server.delivery.composing import Composer, Destinations
from flawless.server.delivery.queueing import AlertQueue
from flawless.server.storage.interface import Storage
from flawless.server.threads import Runner

MAILBOX_FILE = "mailbox"
# GitHub asks for a pause of at least a second between requests that create content.
ISSUE_REQUEST_INTERVAL = 1.0


def channel_secrets(config: Config) -> list[str]:
    """Every secret the channels know: tokens, the webhook secret, the secret URLs."""
    urls = [config.slack_webhook_url, *config.webhook_urls]
    return [config.github_token, config.gitlab_token, config.webhook_secret,
            *[part for url in urls if url for part in secret_url_parts(url)]]


def destinations(config: Config) -> Destinations:
    """The destination names of the configured channels."""
    gitlab = ""
    if config.gitlab_url and config.gitlab_project and config.gitlab_token:
        gitlab = GitLabApi.destination_of(config.gitlab_url, config.gitlab_project)
    return Destinations(
        slack=url_destination(config.slack_webhook_url) if config.slack_webhook_url else "",
        webhooks=tuple(url_destination(url) for url in config.webhook_urls)
        if config.webhook_secret else (),
        github=config.github_repo if config.github_repo and config.github_token else "",
        gitlab=gitlab)


@dataclass
class Delivery:
    """The parts of the delivery stage."""

    alerts: AlertQueue
    channels: dict[str, Channel]


def build_delivery(config: Config, storage: Storage, reader: Runner, writer: Runner,
                   delivery_pool: Runner, clock: Any, base_url: Any,
                   treq: Optional[Any] = None,
                   issue_request_interval: float = ISSUE_REQUEST_INTERVAL) -> Delivery:
    """Every configured channel, and the queue that feeds them. ``treq`` is the HTTP client
    (default: treq on ``clock``, the reactor)."""
    where = destinations(config)
    composer = Composer(config.smtp_from, where, base_url)
    alerts = AlertQueue(composer, HourlyBounds(config.mail_max_per_recipient_per_hour,
                                               config.mail_max_per_hour),
                        config.alert_channels, config.issue_comment_interval)
    channels: dict[str, Channel] = {"email": EmailChannel(
        _smtp_settings(config), os.path.join(config.data_dir_path, MAILBOX_FILE),
        delivery_pool)}
    if where.configured() == {"email"}:
        return Delivery(alerts, channels)
    if treq is None:
        treq = _treq(clock)
    http = HttpClient(treq, clock, config.channel_timeout_seconds, channel_secrets(config))
    if where.slack:
        channels["slack"] = SlackChannel(config.slack_webhook_url, http, clock)
    if where.webhooks:
        channels["webhook"] = WebhookChannel(tuple(config.webhook_urls), config.webhook_secret,
                                             http, clock)
    trackers = {"github": where.github and GitHubApi(
                    config.github_api_url, config.github_repo, config.github_token, http=http,
                    clock=clock, request_interval=issue_request_interval),
                "gitlab": where.gitlab and GitLabApi(
                    config.gitlab_url, config.gitlab_project, config.gitlab_token, http=http,
                    clock=clock, request_interval=issue_request_interval)}
    for name, api in trackers.items():
        if api:
            channels[name] = IssueChannel(name, api, storage, reader, writer, clock)
    return Delivery(alerts, channels)


def _treq(reactor: Any) -> Any:
    return HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor)))


def _smtp_settings(config: Config) -> Optional[SmtpSettings]:
    address = config.smtp_address
    if address is None:
        return None
    return SmtpSettings(host=address[0], port=address[1], user=config.smtp_user,
                        password=config.smtp_password, use_tls=config.smtp_use_tls,
                        timeout=config.smtp_timeout_seconds)
