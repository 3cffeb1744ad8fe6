"""Adding entries to the rule files from the dashboard.

An entry is appended as YAML text rather than by re-dumping the whole file, so everything a
person wrote there (comments, order, quoting) survives. The new text is checked to parse to
the old entries plus the new one before it atomically replaces the file; the server's rule
reloader then picks it up.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Union

import yaml

from flawless.config import parse_bool
from flawless.server.atomic import write_atomically
from flawless.server.rules.loading import RULE_FILES as FILE_NAMES, check_rule_text, legacy_name

MAX_FIELD_CHARS = 1000
_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
_LOCAL_PART = re.compile(r"^[^@\s,<>]+$")
_EXCEPTION_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

# One edit at a time: read, append and replace must not interleave.
_write_lock = threading.Lock()


@dataclass(frozen=True)
class Field:
    """One input of a rule form."""

    name: str
    label: str
    kind: str = "text"       # text | int | email | emails | address | exception | bool
    required: bool = False
    help: str = ""
    minimum: int = 1         # smallest value of an int field


@dataclass(frozen=True)
class RuleFile:
    """One rule file: its name, what an entry looks like and the form that makes one."""

    kind: str
    title: str
    description: str
    shape: str               # "list" or "mapping"
    fields: tuple[Field, ...]

    @property
    def filename(self) -> str:
        """The rule file's name in config_dir_path."""
        return FILE_NAMES[self.kind]


_LINE_FIELDS = (
    Field("filename", "File", required=True,
          help="Repository path (shop/cart.py) or the path after site-packages/"),
    Field("function_name", "Function", help="Empty matches every function"),
    Field("code_fragment", "Code fragment", help="Empty matches every line"),
)

RULE_FILES: Mapping[str, RuleFile] = {rule.kind: rule for rule in (
    RuleFile("known_errors", "Known error",
             "Errors the team knows about: silenced, or alerted on their own terms.", "list",
             _LINE_FIELDS + (
                 Field("min_alert_threshold", "Alert from occurrence", "int"),
                 Field("max_alert_threshold", "Alert until occurrence", "int",
                       help="0 silences the error for good", minimum=0),
                 Field("alert_every_n_occurrences", "Alert every N occurrences", "int"),
                 Field("email_recipients", "Recipients", "emails",
                       help="Comma-separated addresses"),
                 Field("email_header", "Note in the email"),
             )),
    RuleFile("building_blocks", "Building block",
             "Shared code whose errors are blamed on the caller.", "list", _LINE_FIELDS),
    RuleFile("third_party_whitelist", "Third-party whitelist",
             "A report passing through such a line is dropped.", "list", _LINE_FIELDS),
    RuleFile("ignored_exceptions", "Ignored exception",
             "Exception types that are never reported.", "list",
             (Field("exception_type", "Exception type", "exception", True,
                    "Module-qualified, e.g. requests.exceptions.ConnectionError"),)),
    RuleFile("watched_files", "Watch",
             "Someone who wants mail about errors in a file or directory.", "list",
             (Field("email", "Email", "email", True),
              Field("filepath", "Path", required=True, help="A directory covers all below it"),
              Field("watch_all_errors", "Every error, not only those blamed on others",
                    "bool"))),
    RuleFile("email_remapping", "Remap",
             "Mail for one address (or bare local part) goes to another address.", "mapping",
             (Field("from_address", "From", "address", True,
                    help="An address, or a bare local part such as alice"),
              Field("to_address", "To", "email", True))),
    RuleFile("disownership", "Disown",
             "Someone hands the errors blamed on them in a path to someone else.", "list",
             (Field("email", "Email", "email", True),
              Field("filepath", "Path", required=True, help="A directory covers all below it"),
              Field("designated_email", "Designated email", "email", True))),
)}

Entry = Union[dict, str]


class FormInvalid(ValueError):
    """A form that cannot become an entry; ``errors`` maps each bad field to the reason."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in self.errors.items()))


class RuleFileError(Exception):
    """The rule file cannot be edited safely (broken, or not the expected shape)."""


class DuplicateEntry(Exception):
    """The file already holds this entry (or, for a mapping, this key)."""


def _convert(spec: Field, raw: str) -> Any:
    """The typed value of one field, or None when empty; raises ValueError with a reason."""
    text = raw.strip()
    if spec.kind == "bool":
        return parse_bool(text) if text else False  # an unticked box sends nothing
    if not text:
        if spec.required:
            raise ValueError("is required")
        return None
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError(f"is longer than {MAX_FIELD_CHARS} characters")
    if any(ord(char) < 32 for char in text):
        raise ValueError("must be a single line")
    if spec.kind == "int":
        if not text.isdigit() or int(text) < spec.minimum:
            raise ValueError(f"must be a whole number of at least {spec.minimum}")
        return int(text)
    if spec.kind == "email" and not _EMAIL.match(text):
        raise ValueError("must be an email address")
    if spec.kind == "address" and not (_EMAIL.match(text) or _LOCAL_PART.match(text)):
        raise ValueError("must be an email address or a bare local part")
    if spec.kind == "exception" and not _EXCEPTION_NAME.match(text):
        raise ValueError("must be a dotted exception name")
    if spec.kind == "emails":
        addresses = [part.strip() for part in text.split(",") if part.strip()]
        bad = [address for address in addresses if not _EMAIL.match(address)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an email address")
        return addresses
    return text


def entry_from_form(kind: str, form: Mapping[str, str]) -> Entry:
    """The rule-file entry a submitted form describes; raises FormInvalid naming each bad
    field."""
    rule = RULE_FILES[kind]
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in rule.fields:
        try:
            value = _convert(spec, form.get(spec.name, ""))
        except ValueError as error:
            errors[spec.name] = str(error)
            continue
        if value is not None:
            values[spec.name] = value
    low, high = values.get("min_alert_threshold"), values.get("max_alert_threshold")
    if low is not None and high is not None and high < low:
        errors["max_alert_threshold"] = "must not be below the first occurrence alerted"
    if errors:
        raise FormInvalid(errors)
    if kind == "ignored_exceptions":
        return values["exception_type"]
    if kind == "email_remapping":
        return {values["from_address"]: values["to_address"]}
    return values


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False,
                          allow_unicode=True, width=1 << 20)


def _indent(text: str, column: int) -> str:
    pad = " " * column
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def _with_entry(text: str, rule: RuleFile, entry: Entry) -> str:
    """``text`` with ``entry`` added at the end of its top-level list or mapping."""
    addition = entry_text(rule.kind, entry)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleFileError(f"{rule.filename} does not parse: {error}") from None
    if node is None:
        return text + ("\n" if text and not text.endswith("\n") else "") + addition
    expected = yaml.MappingNode if rule.shape == "mapping" else yaml.SequenceNode
    if not isinstance(node, expected):
        raise RuleFileError(f"{rule.filename} must hold a {rule.shape}; edit it by hand")
    _refuse_duplicate(rule, data, entry)
    if node.flow_style:
        # A flow collection ("[]", "{a: b}") cannot take a block entry: rewrite that one node
        # in block style, leaving everything around it (comments included) as it was.
        merged = {**data, **entry} if rule.shape == "mapping" else [*data, entry]
        block = _indent(_dump(merged), node.start_mark.column)[node.start_mark.column:]
        return text[:node.start_mark.index] + block.rstrip("\n") + text[node.end_mark.index:]
    return text + ("\n" if not text.endswith("\n") else "") + _indent(addition,
                                                                      node.start_mark.column)


def _refuse_duplicate(rule: RuleFile, data: Any, entry: Entry) -> None:
    if rule.shape == "mapping":
        assert isinstance(entry, dict)
        for key in entry:
            if key in data:
                raise DuplicateEntry(f"{key} is already mapped to {data[key]} in "
                                     f"{rule.filename}")
    elif entry in data:
        raise DuplicateEntry(f"{rule.filename} already holds this entry")


def _expected(data: Any, rule: RuleFile, entry: Entry) -> Any:
    if rule.shape == "mapping":
        return {**(data or {}), **entry}
    return [*(data or []), entry]


def rule_file_path(config_dir: str, kind: str) -> str:
    """Where the rule file of ``kind`` lives."""
    return os.path.join(config_dir, RULE_FILES[kind].filename)


def read_entries(config_dir: str, kind: str) -> Any:
    """The entries of one rule file as plain data (empty when the file is missing)."""
    rule = RULE_FILES[kind]
    try:
        with open(rule_file_path(config_dir, kind), encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        data = None
    except yaml.YAMLError as error:
        raise RuleFileError(f"{rule.filename} does not parse: {error}") from None
    if data is None:
        return {} if rule.shape == "mapping" else []
    return data


def add_entry(config_dir: str, kind: str, entry: Entry) -> str:
    """Append ``entry`` to the rule file of ``kind`` atomically; return the file's path.

    Raises DuplicateEntry when it is already there and RuleFileError when the file cannot
    be edited safely or would not pass the rule loader's checks. Blocking: call it off the
    reactor thread.
    """
    rule = RULE_FILES[kind]
    path = os.path.realpath(rule_file_path(config_dir, kind))
    legacy = os.path.join(config_dir, legacy_name(rule.filename))
    if not os.path.exists(path) and os.path.exists(legacy):
        raise RuleFileError(f"the {rule.title.lower()} rules come from {legacy}, a file of the "
                            f"original Flawless; rename it to {rule.filename} to edit it here")
    with _write_lock:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            text = ""
        new_text = _with_entry(text, rule, entry)
        try:
            appended = yaml.safe_load(new_text) == _expected(yaml.safe_load(text), rule, entry)
        except yaml.YAMLError:
            appended = False
        if not appended:
            raise RuleFileError(f"{rule.filename} has a layout the entry cannot be appended "
                                "to; edit it by hand")
        problems = check_rule_text(rule.filename, new_text)
        if problems:
            raise RuleFileError("; ".join(problems))
        write_atomically(path, new_text.encode("utf-8"))
    return path


def entry_text(kind: str, entry: Entry) -> str:
    """The YAML text ``entry`` is written as in its rule file."""
    return _dump(entry if RULE_FILES[kind].shape == "mapping" else [entry])
