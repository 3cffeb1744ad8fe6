"""flawless.cfg: one option table, typed values, errors naming file, line and option."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pytest

from flawless.config import OPTIONS, ConfigError, load_config

CONTRACT_OPTIONS = """port http_port hostname email_domain_name ignore_vcs_email_domain
default_contact smtp_host smtp_user smtp_password smtp_use_tls smtp_from data_dir_path
config_dir_path report_runtime_package_directory_names report_only_after_minimum_date
report_error_threshold only_blame_filepaths_matching max_concurrent_git_blames git_cli_path
repo_dir repo_url repo_branch_pattern log_level log_file bind_address ingest_keys
admin_password storage viewer_password""".split()


def write(tmp_path, text):
    path = tmp_path / "etc" / "flawless.cfg"
    path.parent.mkdir(exist_ok=True)
    path.write_text("[flawless]\n" + text)
    return path


def test_every_contract_option_is_in_the_table():
    names = {option.name for option in OPTIONS}
    assert set(CONTRACT_OPTIONS) <= names


def test_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.port == 9028
    assert config.http_port == 8080
    assert config.bind_address == "127.0.0.1"
    assert config.report_error_threshold == 3
    assert config.storage == "sqlite"
    assert config.ignore_vcs_email_domain is False
    assert config.config_dir_path == str(tmp_path / "etc")


@pytest.mark.parametrize("text, expected", [
    ("False", False), ("false", False), ("NO", False), ("0", False),
    ("True", True), ("yes", True), ("1", True),
])
def test_booleans_are_parsed_properly(tmp_path, text, expected):
    config = load_config(write(tmp_path, f"smtp_use_tls = {text}\n"))
    assert config.smtp_use_tls is expected


def test_bad_values_name_the_file_the_line_and_the_option(tmp_path):
    path = write(tmp_path, "port = 9028\nsmtp_use_tls = maybe\nreport_error_threshold = many\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    problems = raised.value.problems
    assert f"{path}:3: option smtp_use_tls: 'maybe' is not a boolean" in problems[0]
    assert f"{path}:4: option report_error_threshold: 'many' is not a whole number" in problems[1]


def test_unknown_options_are_errors(tmp_path):
    path = write(tmp_path, "prot = 1\n")
    with pytest.raises(ConfigError, match=r"flawless.cfg:2: unknown option 'prot'"):
        load_config(path)


def test_relative_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    config = load_config(write(tmp_path, "repo_dir = ..\ndata_dir_path = data\n"))
    assert config.repo_dir == str(tmp_path)
    assert config.data_dir_path == str(tmp_path / "etc" / "data")
    assert config.pid_file == str(tmp_path / "etc" / "data" / "flawless.pid")


def test_typed_values(tmp_path):
    config = load_config(write(tmp_path, (
        "report_only_after_minimum_date = 2026-01-31\n"
        "ingest_keys = one, two\n"
        "only_blame_filepaths_matching = ^shop/, ^lib/\n"
        "smtp_host = mail.example.com:2525\n")))
    assert config.report_only_after_minimum_date == datetime.date(2026, 1, 31)
    assert config.ingest_keys == ("one", "two")
    assert config.only_blame_filepaths_matching == ("^shop/", "^lib/")
    assert config.smtp_address == ("mail.example.com", 2525)


@pytest.mark.parametrize("line, reason", [
    ("report_only_after_minimum_date = 31/01/2026", "is not a date in the form YYYY-MM-DD"),
    ("only_blame_filepaths_matching = (", "is not a regular expression"),
    ("smtp_host = mail.example.com", "must be host:port"),
    ("port = 70000", "is not a TCP port"),
    ("log_level = loud", "is not one of"),
    ("hostname = flawless.example.com", "must start with http:// or https://"),
])
def test_each_type_rejects_bad_values(tmp_path, line, reason):
    with pytest.raises(ConfigError, match=reason):
        load_config(write(tmp_path, line + "\n"))


def test_missing_section_and_missing_file(tmp_path):
    path = tmp_path / "flawless.cfg"
    path.write_text("[other]\nport = 1\n")
    with pytest.raises(ConfigError, match="missing \\[flawless\\] section"):
        load_config(path)
    path.write_text("port = 1\n")
    with pytest.raises(ConfigError, match="flawless.cfg:1: File contains no section headers"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.cfg")


def test_public_dict_hides_secrets(tmp_path):
    config = load_config(write(tmp_path, "smtp_password = hunter2\nadmin_password = pw\n"))
    shown = repr(config.public_dict())
    assert "hunter2" not in shown and "'pw'" not in shown


def test_flawless_options_prints_every_option():
    output = subprocess.run([sys.executable, "-m", "flawless", "options"], check=True,
                            capture_output=True, text=True).stdout
    for option in OPTIONS:
        assert option.name in output
        assert option.description in output


def test_example_config_is_valid():
    here = os.path.dirname(os.path.abspath(__file__))
    config = load_config(os.path.join(here, os.pardir, "config", "flawless.cfg"))
    assert os.path.exists(os.path.join(config.repo_dir, ".git"))  # a file in a worktree
