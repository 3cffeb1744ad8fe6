"""Appending entries to rule files keeps what people wrote and leaves valid YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flawless.server.rules import editing as rule_edit
from flawless.server.rules.editing import (DuplicateEntry, FormInvalid, RuleFileError, add_entry,
                                       entry_from_form)

KNOWN = {"filename": "shop/cart.py", "function_name": "total",
         "code_fragment": "return sum(prices)"}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_a_missing_file_is_created_with_the_entry(tmp_path):
    add_entry(str(tmp_path), "known_errors", KNOWN)
    assert yaml.safe_load((tmp_path / "known_errors.yaml").read_text()) == [KNOWN]


def test_comments_and_existing_entries_survive_an_append(tmp_path):
    original = ("# Errors we live with; ask Carol before removing one.\n"
                "- filename: shop/legacy.py   # the old checkout\n"
                "  function_name: run\n"
                "\n"
                "# trailing note")
    path = write(tmp_path, "known_errors.yaml", original)
    add_entry(str(tmp_path), "known_errors", KNOWN)
    text = path.read_text()
    assert text.startswith(original)
    assert yaml.safe_load(text) == [{"filename": "shop/legacy.py", "function_name": "run"},
                                    KNOWN]


def test_an_indented_list_gets_an_entry_at_its_own_indentation(tmp_path):
    path = write(tmp_path, "ignored_exceptions.yaml", "  - requests.exceptions.Timeout\n")
    add_entry(str(tmp_path), "ignored_exceptions", "socket.timeout")
    assert yaml.safe_load(path.read_text()) == ["requests.exceptions.Timeout",
                                                "socket.timeout"]


@pytest.mark.parametrize("text", ["[]\n", "# none yet\n[]  # empty\n", "[a.B]\n", ""])
def test_flow_lists_and_empty_files_take_an_entry(tmp_path, text):
    path = write(tmp_path, "ignored_exceptions.yaml", text)
    before = yaml.safe_load(text) or []
    add_entry(str(tmp_path), "ignored_exceptions", "socket.timeout")
    after = path.read_text()
    assert yaml.safe_load(after) == before + ["socket.timeout"]
    for line in text.splitlines():
        if "#" in line:
            assert line[line.index("#"):] in after


def test_remapping_appends_to_the_mapping_and_refuses_a_second_target(tmp_path):
    path = write(tmp_path, "email_remapping.yaml", "# who reads what\nalice: al@example.com\n")
    add_entry(str(tmp_path), "email_remapping", {"bob@old.example": "bob@example.org"})
    assert yaml.safe_load(path.read_text()) == {"alice": "al@example.com",
                                                "bob@old.example": "bob@example.org"}
    assert path.read_text().startswith("# who reads what\n")
    with pytest.raises(DuplicateEntry):
        add_entry(str(tmp_path), "email_remapping", {"alice": "other@example.com"})


def test_a_duplicate_entry_changes_nothing(tmp_path):
    add_entry(str(tmp_path), "known_errors", KNOWN)
    before = (tmp_path / "known_errors.yaml").read_text()
    with pytest.raises(DuplicateEntry):
        add_entry(str(tmp_path), "known_errors", dict(KNOWN))
    assert (tmp_path / "known_errors.yaml").read_text() == before


@pytest.mark.parametrize("text", ["- [unclosed\n", "filename: shop/cart.py\n",
                                  "- filename: a.py\n  colour: red\n"])
def test_a_broken_or_misshapen_file_is_left_alone(tmp_path, text):
    path = write(tmp_path, "known_errors.yaml", text)
    with pytest.raises(RuleFileError):
        add_entry(str(tmp_path), "known_errors", KNOWN)
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["known_errors.yaml"]


def test_strings_that_look_like_yaml_are_written_as_strings(tmp_path):
    entry = {"filename": "a.py", "function_name": "yes",
             "code_fragment": "x: [1, {2}] # not a comment & *alias"}
    add_entry(str(tmp_path), "building_blocks", entry)
    assert yaml.safe_load((tmp_path / "building_blocks.yaml").read_text()) == [entry]


def test_forms_become_entries_of_the_contract_shapes():
    assert entry_from_form("known_errors", {
        **KNOWN, "min_alert_threshold": "5", "max_alert_threshold": "", "email_header": "",
        "email_recipients": "a@x.org, b@y.org"}) == {
        **KNOWN, "min_alert_threshold": 5, "email_recipients": ["a@x.org", "b@y.org"]}
    assert entry_from_form("known_errors", {"filename": "a.py"}) == {"filename": "a.py"}
    assert entry_from_form("watched_files", {"email": "c@x.org", "filepath": "shop/"}) == {
        "email": "c@x.org", "filepath": "shop/", "watch_all_errors": False}
    assert entry_from_form("disownership", {"email": "a@x.org", "filepath": "shop/legacy",
                                            "designated_email": "b@x.org"}) == {
        "email": "a@x.org", "filepath": "shop/legacy", "designated_email": "b@x.org"}
    assert entry_from_form("email_remapping", {"from_address": "alice",
                                               "to_address": "al@x.org"}) == {"alice": "al@x.org"}
    assert entry_from_form("ignored_exceptions",
                           {"exception_type": "requests.exceptions.ConnectionError"}
                           ) == "requests.exceptions.ConnectionError"


@pytest.mark.parametrize("kind, form, bad", [
    ("known_errors", {}, "filename"),
    ("known_errors", {"filename": "a.py", "min_alert_threshold": "0"}, "min_alert_threshold"),
    ("known_errors", {"filename": "a.py", "min_alert_threshold": "9",
                      "max_alert_threshold": "3"}, "max_alert_threshold"),
    ("known_errors", {"filename": "a.py", "email_recipients": "a@x.org, nope"},
     "email_recipients"),
    ("known_errors", {"filename": "a.py\nb"}, "filename"),
    ("watched_files", {"email": "not an address", "filepath": "x"}, "email"),
    ("ignored_exceptions", {"exception_type": "os.Error; rm"}, "exception_type"),
    ("email_remapping", {"from_address": "a b", "to_address": "x@y.org"}, "from_address"),
])
def test_bad_forms_name_the_bad_field(kind, form, bad):
    with pytest.raises(FormInvalid) as invalid:
        entry_from_form(kind, form)
    assert bad in invalid.value.errors


def test_every_rule_file_of_the_contract_has_a_form():
    assert {rule.filename for rule in rule_edit.RULE_FILES.values()} == {
        "building_blocks.yaml", "third_party_whitelist.yaml", "known_errors.yaml",
        "ignored_exceptions.yaml", "watched_files.yaml", "email_remapping.yaml",
        "disownership.yaml"}
