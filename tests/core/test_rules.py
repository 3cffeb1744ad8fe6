"""Loading and validating the rule files: every problem as path:LINE: reason, all at once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flawless.server.core.model import (ChannelRule, Disownership, KnownError, LineRule, Rules,
                                        Watch)
from flawless.server.rules.loading import (RULE_FILES, RulesError, check_rule_text, check_rules,
                                           fingerprint, load_rules, read_rule_files)

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_files_are_empty(tmp_path: Path) -> None:
    assert load_rules(str(tmp_path)) == Rules()
    assert check_rules(str(tmp_path)) == []


def test_the_example_rule_files_are_valid_and_empty() -> None:
    assert sorted(RULE_FILES.values()) == sorted(
        path.name for path in EXAMPLE_CONFIG.glob("*.yaml"))
    assert load_rules(str(EXAMPLE_CONFIG)) == Rules()


def test_every_kind_of_entry_is_parsed_with_its_source(tmp_path: Path) -> None:
    write(tmp_path, "building_blocks.yaml", """\
# helpers
- filename: shop/validation.py
  function_name: check
  code_fragment: raise ValueError

- filename: ./shop/db.py
  code_fragment: "   "
""")
    write(tmp_path, "third_party_whitelist.yaml", "- {filename: requests/adapters.py}\n")
    write(tmp_path, "known_errors.yaml", """\
- filename: shop/cart.py
  function_name: add_item
  min_alert_threshold: 10
  max_alert_threshold: 1000
  alert_every_n_occurrences: 100
  email_recipients: [team@example.com]
  email_header: Ticket SHOP-1
""")
    write(tmp_path, "ignored_exceptions.yaml", "- KeyboardInterrupt\n-  builtins.SystemExit \n")
    write(tmp_path, "watched_files.yaml", """\
- email: carol@example.net
  filepath: shop/
  watch_all_errors: true
""")
    write(tmp_path, "email_remapping.yaml", "Bob@Laptop.local: bob@example.org\nalice: a@x.io\n")
    write(tmp_path, "disownership.yaml", """\
- {email: alice@example.com, filepath: shop/legacy, designated_email: bob@example.org}
""")
    rules = load_rules(str(tmp_path))
    assert rules.building_blocks == (
        LineRule("shop/validation.py", "check", "raise ValueError", "building_blocks.yaml:2"),
        LineRule("shop/db.py", None, None, "building_blocks.yaml:6"),
    )
    assert rules.third_party_whitelist == (
        LineRule("requests/adapters.py", source="third_party_whitelist.yaml:1"),)
    assert rules.known_errors == (KnownError(
        "shop/cart.py", "add_item", None, "known_errors.yaml:1", min_alert_threshold=10,
        max_alert_threshold=1000, alert_every_n_occurrences=100,
        email_recipients=("team@example.com",), email_header="Ticket SHOP-1"),)
    assert rules.ignored_exceptions == ("KeyboardInterrupt", "builtins.SystemExit")
    assert rules.ignored_exception_sources["builtins.SystemExit"] == "ignored_exceptions.yaml:2"
    assert rules.watched_files == (Watch("carol@example.net", "shop", True,
                                         "watched_files.yaml:1"),)
    assert rules.email_remapping == {"bob@laptop.local": "bob@example.org", "alice": "a@x.io"}
    assert rules.email_remapping_sources["alice"] == "email_remapping.yaml:2"
    assert rules.disownership == (Disownership("alice@example.com", "shop/legacy",
                                               "bob@example.org", "disownership.yaml:1"),)


@pytest.mark.parametrize("name, text, expected", [
    ("building_blocks.yaml", "- filename: a.py\n  function_name: [1, 2\n",
     "building_blocks.yaml:3: YAML syntax error"),
    ("building_blocks.yaml", "- filename: a.py\n\tbad: tab\n", "building_blocks.yaml:2: YAML"),
    ("building_blocks.yaml", "filename: a.py\n",
     "building_blocks.yaml:1: expected a list of entries"),
    ("building_blocks.yaml", "- a.py\n", "building_blocks.yaml:1: each entry must be a mapping"),
    ("building_blocks.yaml", "- filename: a.py\n  function: f\n",
     "building_blocks.yaml:2: unknown key 'function'"),
    ("building_blocks.yaml", "- function_name: f\n",
     "building_blocks.yaml:1: missing required key 'filename'"),
    ("building_blocks.yaml", "- filename: a.py\n- filename: 12\n",
     "building_blocks.yaml:2: filename must be a string, not an integer"),
    ("building_blocks.yaml", "- filename: ''\n", "building_blocks.yaml:1: filename must not"),
    ("building_blocks.yaml", "- filename: a.py\n  filename: b.py\n",
     "building_blocks.yaml:2: duplicate key 'filename'"),
    ("third_party_whitelist.yaml", "- filename: a.py\n  code_fragment: [x]\n",
     "third_party_whitelist.yaml:2: code_fragment must be a string, not a list"),
    ("known_errors.yaml", "- filename: a.py\n  min_alert_threshold: -1\n",
     "known_errors.yaml:2: min_alert_threshold must be >= 1, not -1"),
    ("known_errors.yaml", "- filename: a.py\n  max_alert_threshold: -5\n",
     "known_errors.yaml:2: max_alert_threshold must be >= 0"),
    ("known_errors.yaml", "- filename: a.py\n  alert_every_n_occurrences: 0\n",
     "known_errors.yaml:2: alert_every_n_occurrences must be >= 1"),
    ("known_errors.yaml", "- filename: a.py\n  min_alert_threshold: ten\n",
     "known_errors.yaml:2: min_alert_threshold must be an integer, not a string"),
    ("known_errors.yaml", "- filename: a.py\n  min_alert_threshold: true\n",
     "known_errors.yaml:2: min_alert_threshold must be an integer, not a boolean"),
    ("known_errors.yaml", "- filename: a.py\n  min_alert_threshold: 9\n"
                          "  max_alert_threshold: 3\n",
     "known_errors.yaml:1: max_alert_threshold 3 is below min_alert_threshold 9"),
    ("known_errors.yaml", "- filename: a.py\n  email_recipients:\n    - ok@example.com\n"
                          "    - not-an-address\n",
     "known_errors.yaml:4: email_recipients 'not-an-address' is not a valid email address"),
    ("known_errors.yaml", "- filename: a.py\n  email_recipients: ok@example.com\n",
     "known_errors.yaml:2: email_recipients must be a list of email addresses"),
    ("ignored_exceptions.yaml", "- ValueError\n- {a: 1}\n",
     "ignored_exceptions.yaml:2: an exception type name must be a string, not a mapping"),
    ("ignored_exceptions.yaml", "- Value Error\n",
     "ignored_exceptions.yaml:1: 'Value Error' is not an exception type name"),
    ("ignored_exceptions.yaml", "ValueError\n", "ignored_exceptions.yaml:1: expected a list"),
    ("watched_files.yaml", "- email: carol@example.net\n  filepath: shop\n",
     "watched_files.yaml:1: missing required key 'watch_all_errors'"),
    ("watched_files.yaml", "- email: carol@example.net\n  filepath: shop\n"
                           "  watch_all_errors: sometimes\n",
     "watched_files.yaml:3: watch_all_errors must be true or false, not a string"),
    ("watched_files.yaml", "- email: carol at example\n  filepath: shop\n"
                           "  watch_all_errors: false\n",
     "watched_files.yaml:1: email 'carol at example' is not a valid email address"),
    ("email_remapping.yaml", "- a: b@example.com\n", "email_remapping.yaml:1: expected a mapping"),
    ("email_remapping.yaml", "ok: ok@example.com\nbob: bob@\n",
     "email_remapping.yaml:2: the address for 'bob' 'bob@' is not a valid email address"),
    ("email_remapping.yaml", "bob smith: bob@example.com\n",
     "email_remapping.yaml:1: 'bob smith' is neither an email address nor a bare local part"),
    ("email_remapping.yaml", "Bob: b@example.com\nbob: c@example.com\n",
     "email_remapping.yaml:2: duplicate key 'bob'"),
    ("disownership.yaml", "- email: alice@example.com\n  filepath: shop\n",
     "disownership.yaml:1: missing required key 'designated_email'"),
    ("disownership.yaml", "- email: alice@example.com\n  filepath: shop\n"
                          "  designated_email: \"x@example.com\\r\\nBcc: y@example.com\"\n",
     "disownership.yaml:3: designated_email"),
    ("building_blocks.yaml", "- filename: a.py\n  x: !!python/object:os.system ls\n",
     "building_blocks.yaml:2: unsupported YAML: could not determine a constructor"),
    ("building_blocks.yaml", "- filename: a.py\n  bogus: 1\n  function_name: f\n",
     "building_blocks.yaml:2: unknown key 'bogus'"),
    ("channels.yaml", "- filepath: shop/\n  channels: [email,\n    teams]\n",
     "channels.yaml:3: 'teams' is not a channel (expected one of email, slack, webhook, "
     "github, gitlab)"),
    ("channels.yaml", "- filepath: shop/\n  channels: []\n",
     "channels.yaml:2: channels must be a non-empty list of channel names"),
    ("channels.yaml", "- filepath: shop/\n  channels: slack\n",
     "channels.yaml:2: channels must be a non-empty list of channel names"),
    ("channels.yaml", "- filepath: shop/\n  channels: [slack, slack]\n",
     "channels.yaml:2: channel 'slack' is listed twice"),
    ("channels.yaml", "- channels: [slack]\n", "channels.yaml:1: missing required key 'filepath'"),
])
def test_each_broken_file_names_its_line_and_reason(tmp_path: Path, name: str, text: str,
                                                    expected: str) -> None:
    write(tmp_path, name, text)
    problems = check_rules(str(tmp_path))
    prefix = str(tmp_path / expected.split(":")[0]) + ":"
    assert len(problems) == 1, problems
    assert problems[0].startswith(prefix)
    assert problems[0][len(str(tmp_path)) + 1:].startswith(expected), problems[0]
    with pytest.raises(RulesError) as raised:
        load_rules(str(tmp_path))
    assert raised.value.problems == problems


def test_channels_yaml_routes_paths_to_channels(tmp_path: Path) -> None:
    write(tmp_path, "channels.yaml", "# where alerts go\n- filepath: ./shop/payments/\n"
                                     "  channels: [email, slack, github]\n"
                                     "- {filepath: vendor, channels: [gitlab]}\n")
    assert load_rules(str(tmp_path)).channels == (
        ChannelRule("shop/payments", ("email", "slack", "github"), "channels.yaml:2"),
        ChannelRule("vendor", ("gitlab",), "channels.yaml:4"))


def test_channels_yaml_has_no_name_without_its_extension(tmp_path: Path) -> None:
    write(tmp_path, "channels", "garbage: [")
    assert check_rules(str(tmp_path)) == [] and load_rules(str(tmp_path)) == Rules()


def test_all_problems_of_all_files_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "building_blocks.yaml", "- filename: a.py\n  bogus: 1\n- function_name: f\n")
    write(tmp_path, "known_errors.yaml", "- filename: a.py\n  min_alert_threshold: 0\n")
    write(tmp_path, "watched_files.yaml", "- [not, a, mapping]\n")
    write(tmp_path, "ignored_exceptions.yaml", "- ValueError\n  oops: [\n")
    problems = check_rules(str(tmp_path))
    located = [problem[len(str(tmp_path)) + 1:].split(": ")[0] for problem in problems]
    assert located == ["building_blocks.yaml:2", "building_blocks.yaml:3",
                       "known_errors.yaml:2", "ignored_exceptions.yaml:2",
                       "watched_files.yaml:1"]
    with pytest.raises(RulesError) as raised:
        load_rules(str(tmp_path))
    assert str(raised.value) == "\n".join(problems)


def test_non_utf8_and_unreadable_files_are_problems(tmp_path: Path) -> None:
    (tmp_path / "known_errors.yaml").write_bytes(b"- filename: caf\xe9.py\n")
    os.mkdir(tmp_path / "disownership.yaml")
    problems = check_rules(str(tmp_path))
    assert problems[0].startswith(f"{tmp_path}/known_errors.yaml:1: not UTF-8")
    assert problems[1].startswith(f"{tmp_path}/disownership.yaml:1: cannot be read")


def test_empty_and_null_optional_values(tmp_path: Path) -> None:
    write(tmp_path, "known_errors.yaml", "- filename: a.py\n  function_name:\n"
                                         "  email_recipients:\n")
    write(tmp_path, "building_blocks.yaml", "")
    write(tmp_path, "email_remapping.yaml", "# nothing yet\n")
    rules = load_rules(str(tmp_path))
    assert rules.known_errors == (KnownError("a.py", source="known_errors.yaml:1"),)
    assert rules.building_blocks == () and rules.email_remapping == {}


def test_fingerprint_follows_the_content(tmp_path: Path) -> None:
    empty = fingerprint(read_rule_files(str(tmp_path)))
    write(tmp_path, "building_blocks.yaml", "[]\n")
    created = fingerprint(read_rule_files(str(tmp_path)))
    assert created != empty
    assert fingerprint(read_rule_files(str(tmp_path))) == created
    write(tmp_path, "building_blocks.yaml", "[] \n")
    edited = fingerprint(read_rule_files(str(tmp_path)))
    assert edited != created
    shutil.copy(tmp_path / "building_blocks.yaml", tmp_path / "unrelated.yaml")
    assert fingerprint(read_rule_files(str(tmp_path))) == edited


def test_an_edit_can_be_checked_before_it_is_written() -> None:
    assert check_rule_text("watched_files.yaml", "- {email: a@example.com, filepath: shop, "
                                                 "watch_all_errors: true}\n") == []
    assert check_rule_text("watched_files.yaml", "- {email: a@laptop, filepath: shop, "
                                                 "watch_all_errors: true}\n") == [
        "watched_files.yaml:1: email 'a@laptop' is not a valid email address"]
