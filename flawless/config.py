"""Every option of ``flawless.cfg`` in one table: name, default, type and description.

``load_config`` reads an INI file with a ``[flawless]`` section, converts each value by
its type, resolves relative paths against the file's own directory, and raises
:class:`ConfigError` naming the file, the line, the option and the reason.
"""

from __future__ import annotations

import configparser
import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from flawless.server.core.channels import CHANNEL_NAMES
from flawless.server.core.redaction import redact
from flawless.server.core.signing import secret_key

SECTION = "flawless"

TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off"}


class ConfigError(ValueError):
    """A bad configuration: ``problems`` lists one message per bad option."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def parse_bool(text: str) -> bool:
    """Parse true/false/yes/no/on/off/1/0, case-insensitive; anything else is an error."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, yes/no or 1/0)")


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def _parse_port(text: str) -> int:
    port = _parse_int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a TCP port (0-65535)")
    return port


def _parse_positive_int(text: str) -> int:
    value = _parse_int(text)
    if value < 1:
        raise ValueError(f"{value} must be at least 1")
    return value


def _parse_non_negative_int(text: str) -> int:
    value = _parse_int(text)
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


def _parse_seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{value} must be a positive number of seconds")
    return value


def _parse_seconds_or_off(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{value} must be a number of seconds, or 0 for none")
    return value


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_patterns(text: str) -> tuple[str, ...]:
    patterns = _parse_list(text)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
    return patterns


def _parse_networks(text: str) -> tuple[str, ...]:
    networks = _parse_list(text)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not an IP address or network "
                             "(such as 10.0.0.7 or 10.0.0.0/8)") from None
    return networks


def _parse_date(text: str) -> Optional[datetime.date]:
    if not text.strip():
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


def _parse_hostport(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} must be host:port")
    _parse_port(port)
    return text


def _parse_url(text: str) -> str:
    text = text.strip().rstrip("/")
    if text and not re.match(r"^https?://[^\s/]+", text):
        raise ValueError(f"{text!r} must start with http:// or https://")
    return text


def _parse_database_url(text: str) -> str:
    text = text.strip()
    if text and not re.match(r"^postgres(ql)?://", text) and "=" not in text:
        raise ValueError("must be postgresql://user:password@host:port/database or a "
                         "libpq connection string (host=... dbname=...)")
    return text


def _parse_urls(text: str) -> tuple[str, ...]:
    urls = tuple(_parse_url(item) for item in _parse_list(text))
    return tuple(url for url in urls if url)


def _parse_repo(text: str) -> str:
    text = text.strip()
    if text and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", text):
        raise ValueError(f"{text!r} must be owner/name")
    return text


def _parse_channels(text: str) -> tuple[str, ...]:
    names = _parse_list(text.lower())
    for name in names:
        if name not in CHANNEL_NAMES:
            raise ValueError(f"{name!r} is not a channel (expected {', '.join(CHANNEL_NAMES)})")
    return tuple(dict.fromkeys(names))


def _parse_webhook_secret(text: str) -> str:
    text = text.strip()
    if text:
        secret_key(text)
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return value

    parse.__name__ = "one of " + "|".join(allowed)
    return parse


def _text(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class Option:
    """One option of flawless.cfg."""

    name: str
    default: str
    kind: str
    description: str
    parse: Callable[[str], Any]
    is_path: bool = False
    secret: bool = False


def _option(name: str, default: str, kind: str, description: str, **extra: Any) -> Option:
    parsers: dict[str, Callable[[str], Any]] = {
        "text": _text,
        "bool": parse_bool,
        "int": _parse_int,
        "port": _parse_port,
        "positive int": _parse_positive_int,
        "non-negative int": _parse_non_negative_int,
        "seconds": _parse_seconds,
        "seconds or 0": _parse_seconds_or_off,
        "list": _parse_list,
        "regex list": _parse_patterns,
        "address list": _parse_networks,
        "date": _parse_date,
        "host:port": _parse_hostport,
        "url": _parse_url,
        "url list": _parse_urls,
        "path": _text,
    }
    parse = extra.pop("parse", None) or parsers[kind]
    return Option(name, default, kind, description, parse, is_path=(kind == "path"), **extra)


OPTIONS: tuple[Option, ...] = (
    _option("port", "9028", "port", "JSON-RPC listener port (0 picks a free one)."),
    _option("http_port", "8080", "port", "Dashboard listener port (0 picks a free one)."),
    _option("bind_address", "127.0.0.1", "text", "Address both listeners bind to."),
    _option("hostname", "", "url",
            "Base URL used in links, e.g. http://flawless.example.com:8080 "
            "(default: http://BIND_ADDRESS:HTTP_PORT)."),
    _option("email_domain_name", "", "text",
            "Domain appended to author addresses whose domain is missing or dotless."),
    _option("ignore_vcs_email_domain", "false", "bool",
            "Always replace the domain of the git author address with email_domain_name."),
    _option("default_contact", "", "text",
            "Who gets errors that cannot be blamed on anyone, and rule-file problems."),
    _option("smtp_host", "", "host:port",
            "SMTP server as host:port; when empty, mail goes to a mailbox file in data_dir_path."),
    _option("smtp_user", "", "text", "SMTP login name (login only when set)."),
    _option("smtp_password", "", "text", "SMTP password.", secret=True),
    _option("smtp_use_tls", "false", "bool", "Use STARTTLS on the SMTP connection."),
    _option("smtp_from", "flawless@localhost", "text", "From address of every email."),
    _option("smtp_timeout_seconds", "30", "seconds", "Timeout of one SMTP conversation."),
    _option("data_dir_path", "data", "path",
            "Where the database and the local mailbox live (relative to flawless.cfg)."),
    _option("config_dir_path", "", "path",
            "Directory of the rule files (default: the directory of flawless.cfg)."),
    _option("report_runtime_package_directory_names", "site-packages,dist-packages", "list",
            "Directory names after which a frame's path is taken as package-relative."),
    _option("report_only_after_minimum_date", "", "date",
            "YYYY-MM-DD: no alert for lines whose blamed commit is older."),
    _option("report_error_threshold", "3", "positive int",
            "Occurrences of an error before its one alert is sent."),
    _option("only_blame_filepaths_matching", "", "regex list",
            "Comma-separated regular expressions; when set, only repository paths "
            "matching one of them are blamed."),
    _option("max_concurrent_git_blames", "4", "positive int",
            "Git blames run at once; further ones wait in a queue."),
    _option("git_cli_path", "git", "text", "The git executable."),
    _option("git_timeout_seconds", "30", "seconds", "Timeout of every git call."),
    _option("repo_dir", "", "path",
            "The git repository whose code is blamed (relative to flawless.cfg)."),
    _option("repo_url", "", "text",
            "When set, cloned into repo_dir on first start and fetched periodically."),
    _option("repo_branch_pattern", "", "text",
            "Branch blamed when a report names no known revision (default: HEAD)."),
    _option("git_commit_graph", "true", "bool",
            "Keep git's commit-graph (with changed-path filters) of the repository written: "
            "a cache git writes itself in its maintenance, that makes blames of long "
            "histories several times faster."),
    _option("repo_fetch_interval_seconds", "300", "seconds",
            "How often repo_url is fetched."),
    _option("blame_cache_size", "10000", "positive int", "Blame results kept in memory."),
    _option("blame_detect_moves", "true", "bool",
            "When the commit git blame names moved the line (it also took that text out of "
            "another file, or moved it within its file), blame the function around it again "
            "with git's move and copy detection (-M, -C) to find who wrote it."),
    _option("fixes_scan_interval_seconds", "60", "seconds",
            "How often the branch tip is checked for new commits whose Fixes: trailers "
            "name errors (a link to the error's page) to mark them fixed by that commit."),
    _option("log_level", "info", "text",
            "debug, info, warn, error or critical.",
            parse=_choice("debug", "info", "warn", "error", "critical")),
    _option("log_file", "", "path", "Log file (default: standard error)."),
    _option("pid_file", "flawless.pid", "path",
            "Pid file written by --daemon (relative to data_dir_path)."),
    _option("ingest_keys", "", "list",
            "Comma-separated keys; when set, every RPC needs Authorization: Bearer KEY.",
            secret=True),
    _option("allowed_origins", "", "list",
            "Comma-separated origins (https://shop.example.com) whose pages may report "
            "errors (flawless.js, Sentry browser SDKs); * allows any. Empty: none."),
    _option("admin_password", "", "text",
            "Password of the pages that change state; when empty they are refused.", secret=True),
    _option("viewer_password", "", "text",
            "When set, every read page and /api/ needs a login with this password (or "
            "admin_password); /check_health stays open.", secret=True),
    _option("page_size", "100", "positive int",
            "Entries on one page of every list page and /api/ list (?page=N)."),
    _option("retention_weeks", "52", "non-negative int",
            "Errors and counts older than this many weeks are pruned (0: keep forever)."),
    _option("storage", "sqlite", "text",
            "Storage backend: sqlite (a file in data_dir_path, one server) or postgresql "
            "(database_url; any number of servers may share it).",
            parse=_choice("sqlite", "postgresql")),
    _option("database_url", "", "text",
            "With storage = postgresql: postgresql://user:password@host:port/database "
            "(or any libpq connection string).", parse=_parse_database_url, secret=True),
    _option("outbox_lease_seconds", "30", "seconds",
            "With several servers on one database: another server takes over an alert this "
            "long after the server delivering it died (a living one keeps extending it)."),
    _option("min_free_disk_bytes", "67108864", "non-negative int",
            "New reports are refused (503, Retry-After) unless the room left for the database "
            "would still hold the waiting reports once more plus this, so that every accepted "
            "report can be processed (0: never refused for want of room)."),
    _option("max_backlog_seconds", "300", "seconds",
            "/check_health says degraded while a report waits longer than this to be "
            "processed."),
    _option("max_body_bytes", "1048576", "positive int",
            "Largest accepted request body after decompression."),
    _option("rate_limit_per_key", "5000", "non-negative int",
            "Reports a second accepted per ingest key (0: no limit); excess gets HTTP 429."),
    _option("rate_limit_per_address", "2000", "non-negative int",
            "Reports a second accepted per client address (0: no limit); excess gets HTTP 429."),
    _option("rate_limit_burst_seconds", "10", "seconds",
            "A client may send this many seconds' worth of its rate at once."),
    _option("trusted_proxies", "", "address list",
            "Addresses or networks (10.0.0.0/8) of reverse proxies in front of flawless: "
            "only from them is X-Forwarded-For believed (rate limits, logins, connection "
            "limits then apply to the address it names)."),
    _option("max_connections", "1000", "non-negative int",
            "Open connections each listener holds at once, lowered to fit the open-file limit "
            "(0: half of what that limit leaves). When all are taken, the one waiting longest "
            "for a request's headers is closed to make room; when all are busy, 503."),
    _option("max_connections_per_address", "64", "non-negative int",
            "Open connections one client address holds on each listener (0: no limit; a "
            "trusted proxy has none); past it, new ones are answered 429 and closed."),
    _option("header_timeout_seconds", "10", "seconds or 0",
            "A connection must send a request's line and headers within this many seconds "
            "of opening, or of its previous answer; else it is closed (0: no deadline)."),
    _option("body_timeout_seconds", "30", "seconds or 0",
            "A request must send its whole body within this many seconds of its headers; "
            "else it is answered 408 and closed (0: no deadline)."),
    _option("max_buffered_body_bytes", "67108864", "non-negative int",
            "Request bodies held in memory for all connections together (0: no limit); "
            "past it, a new body is refused with 503 and Retry-After before it is read, and "
            "one client address may hold a quarter of it."),
    _option("mail_max_per_recipient_per_hour", "20", "non-negative int",
            "Alerts one recipient gets in a wall-clock hour (per destination on the other "
            "channels); the rest follow in one digest when the hour is over (0: no bound)."),
    _option("mail_max_per_hour", "200", "non-negative int",
            "Alerts sent in a wall-clock hour on one channel, all destinations together; the "
            "rest follow in one digest per destination when the hour is over (0: no bound)."),
    _option("alert_channels", "email", "text",
            "Where alerts go: any of email, slack, webhook, github, gitlab (comma-separated); "
            "channels.yaml may choose others per path.", parse=_parse_channels),
    _option("slack_webhook_url", "", "url",
            "Slack incoming webhook URL (turns the slack channel on).", secret=True),
    _option("webhook_urls", "", "url list",
            "Comma-separated URLs that get each alert as a signed JSON POST (Standard "
            "Webhooks).", secret=True),
    _option("webhook_secret", "", "text",
            "Signing secret of webhook_urls: whsec_ followed by base64 of 24 to 64 random "
            "bytes.", secret=True, parse=_parse_webhook_secret),
    _option("github_repo", "", "text", "owner/name of the GitHub repository that gets issues.",
            parse=_parse_repo),
    _option("github_token", "", "text",
            "GitHub token allowed to write issues of github_repo.", secret=True),
    _option("github_api_url", "https://api.github.com", "url",
            "GitHub API base URL (GitHub Enterprise: https://HOST/api/v3)."),
    _option("gitlab_url", "", "url", "GitLab base URL, e.g. https://gitlab.com."),
    _option("gitlab_project", "", "text",
            "GitLab project that gets issues: its path (group/project) or numeric id."),
    _option("gitlab_token", "", "text",
            "GitLab token with the api scope on gitlab_project.", secret=True),
    _option("issue_comment_interval", "86400", "seconds",
            "An error's issue gets at most one comment about its recurrences this often."),
    _option("channel_timeout_seconds", "30", "seconds",
            "Timeout of one HTTP request to Slack, a webhook, GitHub or GitLab."),
)

OPTIONS_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


class Config:
    """Parsed flawless.cfg: every option is an attribute with its typed value."""

    def __init__(self, values: Mapping[str, Any], path: Optional[str]):
        self._values = dict(values)
        self.path = path

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        """Return every option's value."""
        return dict(self._values)

    def public_dict(self) -> dict[str, Any]:
        """Every option's value as JSON data, secrets replaced by a mark."""
        return {name: "(set)" if OPTIONS_BY_NAME[name].secret and value else _as_json(value)
                for name, value in self._values.items()}

    @property
    def base_url(self) -> str:
        """The dashboard's base URL, used in links."""
        return self.hostname or f"http://{self.bind_address}:{self.http_port}"

    @property
    def behind_tls(self) -> bool:
        """Whether the dashboard is reached over https (a TLS proxy in front): its cookies
        are then sent over TLS only."""
        return self.hostname.startswith("https://")

    @property
    def smtp_address(self) -> Optional[tuple[str, int]]:
        """(host, port) of the SMTP server, or None for the local mailbox."""
        if not self.smtp_host:
            return None
        host, _, port = self.smtp_host.rpartition(":")
        return host.strip("[]"), int(port)


def _as_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _line_numbers(path: str) -> dict[str, int]:
    """Map each option name to the line it is set on, for error messages."""
    numbers: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                match = re.match(r"\s*([A-Za-z_][\w-]*)\s*[=:]", line)
                if match:
                    numbers.setdefault(match.group(1).lower(), number)
    except OSError:
        pass
    return numbers


def build_config(raw: Mapping[str, str], path: Optional[str] = None,
                 line_numbers: Optional[Mapping[str, int]] = None) -> Config:
    """Convert raw option strings to a :class:`Config`, reporting every bad one at once."""
    base_dir = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    where = path or "<options>"
    lines = line_numbers or {}
    problems = []
    values: dict[str, Any] = {}
    for name in raw:
        if name not in OPTIONS_BY_NAME:
            problems.append(f"{where}:{lines.get(name, 0)}: unknown option {name!r} "
                            "(see `flawless options`)")
    for option in OPTIONS:
        text = raw.get(option.name, option.default)
        try:
            value = option.parse(text)
        except ValueError as error:
            reason = str(error)
            if option.secret:  # a bad secret is named, never shown
                reason = redact(reason, [text.strip(), *_parse_list(text)])
            problems.append(f"{where}:{lines.get(option.name, 0)}: option {option.name}: "
                            f"{reason}")
            continue
        if option.is_path and value:
            value = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
        values[option.name] = value
    if values.get("storage") == "postgresql" and not values.get("database_url"):
        problems.append(f"{where}:{lines.get('storage', 0)}: option storage: postgresql "
                        "needs database_url")
    if not problems:
        problems += _channel_problems(values, where, lines)
    if problems:
        raise ConfigError(problems)
    if not values["config_dir_path"]:
        values["config_dir_path"] = base_dir
    if values["pid_file"] and not os.path.isabs(raw.get("pid_file", "")):
        values["pid_file"] = os.path.join(values["data_dir_path"],
                                          raw.get("pid_file", "flawless.pid"))
    return Config(values, os.path.abspath(path) if path else None)


# channel -> the options that turn it on (all of them needed)
CHANNEL_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "slack": ("slack_webhook_url",),
    "webhook": ("webhook_urls", "webhook_secret"),
    "github": ("github_repo", "github_token"),
    "gitlab": ("gitlab_url", "gitlab_project", "gitlab_token"),
}


def _channel_problems(values: Mapping[str, Any], where: str,
                      lines: Mapping[str, int]) -> list[str]:
    """A channel named in alert_channels must be configured, and a channel's options come
    together."""
    problems = []
    for channel, names in CHANNEL_OPTIONS.items():
        given = [name for name in names if values[name]]
        missing = [name for name in names if not values[name]]
        if given and missing:
            problems.append(f"{where}:{lines.get(given[0], 0)}: option {given[0]}: the "
                            f"{channel} channel also needs {', '.join(missing)}")
        elif missing and channel in values["alert_channels"]:
            problems.append(f"{where}:{lines.get('alert_channels', 0)}: option alert_channels: "
                            f"{channel} needs {', '.join(missing)}")
    return problems


def configured_channels(config: "Config") -> tuple[str, ...]:
    """The channels whose options are set (email always is)."""
    return ("email",) + tuple(channel for channel, names in CHANNEL_OPTIONS.items()
                              if all(getattr(config, name) for name in names))


def load_config(path: Union[str, "os.PathLike[str]"],
                overrides: Optional[Mapping[str, str]] = None) -> Config:
    """Read and validate flawless.cfg at ``path``; ``overrides`` (option -> text, from the
    command line) take the place of the file's values."""
    path = os.fspath(path)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle, source=path)
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except configparser.Error as error:
        line = getattr(error, "lineno", 0)
        reason = str(error).splitlines()[0].replace(f"{path}: ", "")
        raise ConfigError([f"{path}:{line}: {reason}"]) from None
    if not parser.has_section(SECTION):
        raise ConfigError([f"{path}:1: missing [{SECTION}] section"])
    raw = {name.lower(): value for name, value in parser.items(SECTION)}
    raw.update(overrides or {})
    return build_config(raw, path, _line_numbers(path))


def describe_options() -> str:
    """Return the option table as text: name, default, type and description."""
    rows = [("OPTION", "DEFAULT", "TYPE", "DESCRIPTION")]
    rows += [(o.name, o.default or '""', o.kind, o.description) for o in OPTIONS]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
        for row in rows
    )
