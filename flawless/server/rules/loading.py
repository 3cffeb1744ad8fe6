"""Rule files (YAML in config_dir_path): read and validate into :class:`Rules`.

Every problem of every file is collected before anything is refused, and each one names
its place as ``path:LINE: reason``; line numbers come from the YAML node tree, so every
parsed entry also knows where it was written (its ``source``, ``"file.yaml:LINE"``).
Reloading lives in :mod:`reloading`, editing from the dashboard in :mod:`editing`.
"""

from __future__ import annotations

import errno
import hashlib
import os
from typing import Any, Callable, Mapping, Optional, Union

import yaml

from flawless.server.core.channels import CHANNEL_NAMES
from flawless.server.core.model import (ChannelRule, Disownership, KnownError, LineRule, Rules,
                                        Watch)
from flawless.server.core.text import is_valid_address

# kind (the attribute of Rules) -> file name: the one table of the rule files
RULE_FILES: Mapping[str, str] = {
    "building_blocks": "building_blocks.yaml",
    "third_party_whitelist": "third_party_whitelist.yaml",
    "known_errors": "known_errors.yaml",
    "ignored_exceptions": "ignored_exceptions.yaml",
    "watched_files": "watched_files.yaml",
    "email_remapping": "email_remapping.yaml",
    "disownership": "disownership.yaml",
    "channels": "channels.yaml",
}
# Rule files the original Flawless did not have: never read under a name without .yaml.
NEW_FILES = frozenset({"channels.yaml"})


class RulesError(ValueError):
    """Rule files that cannot be used; ``problems`` lists each as ``path:LINE: reason``."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# -- reading ---------------------------------------------------------------------------------

# file name -> its bytes; None when the file is missing; a str when it cannot be read (why)
Contents = Mapping[str, Union[bytes, str, None]]


_TRANSIENT_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EINTR})


def legacy_name(name: str) -> str:
    """The name the original Flawless gave a rule file: no extension (``known_errors``)."""
    return name[:-len(".yaml")]


def candidate_names(name: str) -> tuple[str, ...]:
    """The names a rule file is looked for under, in order."""
    return (name,) if name in NEW_FILES else (name, legacy_name(name))


def read_rule_files(config_dir: str) -> dict[str, Union[bytes, str, None]]:
    """The content of every rule file, read whole; a file of the original Flawless (named
    without ``.yaml``) is read where the ``.yaml`` file is missing."""
    contents: dict[str, Union[bytes, str, None]] = {}
    for name in RULE_FILES.values():
        for candidate in candidate_names(name):
            contents[candidate] = _read(os.path.join(config_dir, candidate))
            if contents[candidate] is not None:
                break
    return contents


def _read(path: str) -> Union[bytes, str, None]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return "it is a directory"
    except OSError as error:
        if error.errno in _TRANSIENT_ERRORS:
            raise  # the process is short of descriptors or memory: the file is not broken
        # an unreadable file must not pass for a missing (empty) one
        return error.strerror or type(error).__name__


def fingerprint(contents: Contents) -> str:
    """A hash of the content of every rule file: it changes when any of them changes."""
    digest = hashlib.sha256()
    for name in sorted(contents):
        data = contents[name]
        if isinstance(data, str):
            data = b"unreadable: " + data.encode()
        digest.update(name.encode() + (b"-" if data is None else b"+%d:" % len(data)))
        digest.update(data or b"")
    return digest.hexdigest()


# -- validating ------------------------------------------------------------------------------

class _File:
    """Problems and sources of one rule file while its node tree is turned into entries."""

    def __init__(self, path: str, name: str, loader: yaml.SafeLoader):
        self.path = path
        self.name = name
        self._loader = loader
        self.problems: list[str] = []
        # The original Flawless wrote its rule files as JSON lists whose plain strings are
        # comments; such a file (named without .yaml) keeps working.
        self.legacy = not name.endswith(".yaml")

    def fail(self, node: yaml.Node, reason: str) -> None:
        self.problems.append(f"{self.path}:{node.start_mark.line + 1}: {reason}")

    def source(self, node: yaml.Node) -> str:
        return f"{self.name}:{node.start_mark.line + 1}"

    def value(self, node: yaml.Node) -> Any:
        return self._loader.construct_object(node, deep=True)

    def entries(self, root: Optional[yaml.Node], what: str) -> list[yaml.Node]:
        """The items of the top-level list (an empty file is an empty list)."""
        if root is None:
            return []
        if not isinstance(root, yaml.SequenceNode):
            self.fail(root, f"expected a list of {what} at the top level")
            return []
        return [node for node in root.value
                if not (self.legacy and isinstance(node, yaml.ScalarNode)
                        and isinstance(self.value(node), str))]

    def mapping(self, node: yaml.Node,
                what: str) -> Optional[dict[str, tuple[yaml.Node, yaml.Node, Any]]]:
        """A mapping's keys -> (key node, value node, value); None (and a problem) when it is
        not a mapping."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"each entry must be a mapping ({what})")
            return None
        items: dict[str, tuple[yaml.Node, yaml.Node, Any]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.fail(key_node, f"key {key!r} must be a string")
            elif key in items:
                self.fail(key_node, f"duplicate key {key!r}")
            else:
                items[key] = (key_node, value_node, self.value(value_node))
        return items


def _check_text(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[str]:
    if not isinstance(value, str):
        file.fail(node, f"{key} must be a string, not {_kind(value)}")
        return None
    return value


def _check_path(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[str]:
    text = _check_text(file, node, key, value)
    if text is None:
        return None
    path = text.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    path = path.rstrip("/")
    if not path:
        file.fail(node, f"{key} must not be empty")
        return None
    return path


def _check_email(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[str]:
    text = _check_text(file, node, key, value)
    if text is None:
        return None
    if not is_valid_address(text.strip()):
        file.fail(node, f"{key} {text!r} is not a valid email address")
        return None
    return text.strip()


def _check_bool(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[bool]:
    if not isinstance(value, bool):
        file.fail(node, f"{key} must be true or false, not {_kind(value)}")
        return None
    return value


def _threshold_check(minimum: int) -> Callable[[_File, yaml.Node, str, Any], Optional[int]]:
    def check(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[int]:
        if isinstance(value, bool) or not isinstance(value, int):
            file.fail(node, f"{key} must be an integer, not {_kind(value)}")
            return None
        if value < minimum:
            file.fail(node, f"{key} must be >= {minimum}, not {value}")
            return None
        return value
    return check


def _check_recipients(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[tuple]:
    if not isinstance(node, yaml.SequenceNode):
        file.fail(node, f"{key} must be a list of email addresses, not {_kind(value)}")
        return None
    addresses = [_check_email(file, item, key, file.value(item)) for item in node.value]
    if any(address is None for address in addresses):
        return None
    return tuple(addresses)


def _check_channels(file: _File, node: yaml.Node, key: str, value: Any) -> Optional[tuple]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        file.fail(node, f"{key} must be a non-empty list of channel names "
                        f"({', '.join(CHANNEL_NAMES)}), not {_kind(value)}")
        return None
    names = []
    for item in node.value:
        name = file.value(item)
        if name not in CHANNEL_NAMES:
            file.fail(item, f"{name!r} is not a channel (expected one of "
                            f"{', '.join(CHANNEL_NAMES)})")
        elif name in names:
            file.fail(item, f"channel {name!r} is listed twice")
        else:
            names.append(name)
    return tuple(names) if len(names) == len(node.value) else None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


Check = Callable[[_File, yaml.Node, str, Any], Any]
LINE_KEYS: dict[str, Check] = {"filename": _check_path, "function_name": _check_text,
                               "code_fragment": _check_text}
KNOWN_ERROR_KEYS: dict[str, Check] = {
    **LINE_KEYS,
    "min_alert_threshold": _threshold_check(1),
    "max_alert_threshold": _threshold_check(0),
    "alert_every_n_occurrences": _threshold_check(1),
    "email_recipients": _check_recipients,
    "email_header": _check_text,
}
WATCH_KEYS: dict[str, Check] = {"email": _check_email, "filepath": _check_path,
                                "watch_all_errors": _check_bool}
DISOWNERSHIP_KEYS: dict[str, Check] = {"email": _check_email, "filepath": _check_path,
                                       "designated_email": _check_email}
CHANNEL_KEYS: dict[str, Check] = {"filepath": _check_path, "channels": _check_channels}
# The files that list mappings: (their keys and checks, the required keys, the dataclass)
# keys as the original Flawless spelt them -> ours
LEGACY_KEYS: Mapping[str, str] = {"alert_every_n_occurences": "alert_every_n_occurrences"}
ENTRY_SCHEMAS: Mapping[str, tuple[Mapping[str, Check], tuple[str, ...], type]] = {
    "building_blocks": (LINE_KEYS, ("filename",), LineRule),
    "third_party_whitelist": (LINE_KEYS, ("filename",), LineRule),
    "known_errors": (KNOWN_ERROR_KEYS, ("filename",), KnownError),
    "watched_files": (WATCH_KEYS, ("email", "filepath", "watch_all_errors"), Watch),
    "disownership": (DISOWNERSHIP_KEYS, ("email", "filepath", "designated_email"), Disownership),
    "channels": (CHANNEL_KEYS, ("filepath", "channels"), ChannelRule),
}


def _parse_entries(file: _File, root: Optional[yaml.Node], attribute: str) -> tuple:
    keys, required, entry_type = ENTRY_SCHEMAS[attribute]
    entries = []
    for node in file.entries(root, "entries"):
        items = file.mapping(node, ", ".join(required))
        if items is None:
            continue
        before = len(file.problems)
        values: dict[str, Any] = {}
        for key, (key_node, value_node, value) in items.items():
            key = LEGACY_KEYS.get(key, key)
            if key in values:
                file.fail(key_node, f"{key!r} is given twice (once in the original's spelling)")
            elif key not in keys:
                file.fail(key_node, f"unknown key {key!r} (expected {', '.join(keys)})")
            elif value is not None or key in required:
                values[key] = keys[key](file, value_node, key, value)
        for key in required:
            if key not in items:
                file.fail(node, f"missing required key {key!r}")
        if len(file.problems) == before and attribute == "known_errors":
            _check_known_thresholds(file, node, values)
        if len(file.problems) == before:
            for wildcard in ("function_name", "code_fragment"):
                # Blank, or the original Flawless's literal None: a wildcard, as if missing.
                if values.get(wildcard) is not None and values[wildcard].strip() in ("", "None"):
                    values[wildcard] = None
            entries.append(entry_type(**values, source=file.source(node)))
    return tuple(entries)


def _check_known_thresholds(file: _File, node: yaml.Node, values: Mapping[str, Any]) -> None:
    low, high = values.get("min_alert_threshold"), values.get("max_alert_threshold")
    if low is not None and high is not None and high < low:
        file.fail(node, f"max_alert_threshold {high} is below min_alert_threshold {low}: "
                        "use max_alert_threshold: 0 to silence an error")


def _parse_ignored(file: _File, root: Optional[yaml.Node]) -> tuple[tuple, dict[str, str]]:
    names: list[str] = []
    sources: dict[str, str] = {}
    for node in file.entries(root, "exception type names"):
        name = _check_text(file, node, "an exception type name", file.value(node))
        if name is None:
            continue
        name = name.strip()
        if not name or any(char.isspace() for char in name):
            file.fail(node, f"{name!r} is not an exception type name")
        elif name not in sources:
            names.append(name)
            sources[name] = file.source(node)
    return tuple(names), sources


def _parse_remapping(file: _File, root: Optional[yaml.Node]) -> tuple[dict, dict[str, str]]:
    remapping: dict[str, str] = {}
    sources: dict[str, str] = {}
    if root is None:
        return remapping, sources
    if isinstance(root, yaml.SequenceNode) and _is_remap_list(file, root):
        pairs = _remap_pairs(file, root)
    elif isinstance(root, yaml.MappingNode):
        pairs = list(root.value)
    else:
        file.fail(root, "expected a mapping from an address or a local part to an address "
                        "(or the original Flawless's list of {remap: FROM, to: TO})")
        return remapping, sources
    for key_node, value_node in pairs:
        key = file.value(key_node)
        if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key.strip()) \
                or ("@" in key and not is_valid_address(key.strip())):
            file.fail(key_node, f"{key!r} is neither an email address nor a bare local part")
            continue
        key = key.strip().lower()
        address = _check_email(file, value_node, f"the address for {key!r}", file.value(value_node))
        if key in remapping:
            file.fail(key_node, f"duplicate key {key!r}")
        elif address is not None:
            remapping[key] = address
            sources[key] = file.source(key_node)
    return remapping, sources


def _is_remap_list(file: _File, root: yaml.SequenceNode) -> bool:
    """Whether ``root`` is the original Flawless's list of ``{remap, to}`` mappings."""
    return all(isinstance(node, yaml.MappingNode)
               and {file.value(key) for key, _ in node.value} <= {"remap", "to"}
               for node in file.entries(root, "entries"))


def _remap_pairs(file: _File, root: yaml.SequenceNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """(from, to) nodes of the original Flawless's list of ``{remap: FROM, to: TO}``."""
    pairs = []
    for node in file.entries(root, "{remap, to} entries"):
        items = file.mapping(node, "remap, to")
        if items is None:
            continue
        unknown = [key for key in items if key not in ("remap", "to")]
        for key in unknown:
            file.fail(items[key][0], f"unknown key {key!r} (expected remap, to)")
        missing = [key for key in ("remap", "to") if key not in items]
        for key in missing:
            file.fail(node, f"missing required key {key!r}")
        if not unknown and not missing:
            pairs.append((items["remap"][1], items["to"][1]))
    return pairs


def _parse_file(path: str, name: str, attribute: str,
                data: Union[bytes, str]) -> tuple[dict, list[str]]:
    """The Rules fields one file provides, and its problems."""
    if isinstance(data, str):
        return {}, [f"{path}:1: cannot be read: {data}"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return {}, [f"{path}:1: not UTF-8 text ({error.reason} at byte {error.start})"]
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        file = _File(path, name, loader)
        if attribute == "ignored_exceptions":
            names, sources = _parse_ignored(file, root)
            fields = {attribute: names, "ignored_exception_sources": sources}
        elif attribute == "email_remapping":
            remapping, sources = _parse_remapping(file, root)
            fields = {attribute: remapping, "email_remapping_sources": sources}
        else:
            fields = {attribute: _parse_entries(file, root, attribute)}
        return fields, file.problems
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        # a constructor error is well-formed YAML that safe loading refuses (python/* tags)
        kind = "unsupported YAML" if isinstance(error, yaml.constructor.ConstructorError) \
            else "YAML syntax error"
        return {}, [f"{path}:{line}: {kind}: {reason}"]
    finally:
        loader.dispose()


def parse_rule_files(config_dir: str, contents: Contents) -> tuple[Rules, list[str]]:
    """The rules in ``contents`` (as :func:`read_rule_files` gives them) and every problem."""
    fields: dict[str, Any] = {}
    problems: list[str] = []
    for attribute, name in RULE_FILES.items():
        for candidate in candidate_names(name):
            data = contents.get(candidate)
            if data is not None:
                file_fields, file_problems = _parse_file(os.path.join(config_dir, candidate),
                                                         candidate, attribute, data)
                fields.update(file_fields)
                problems.extend(file_problems)
                break
    return Rules(**fields), problems


def load_rules(config_dir: str) -> Rules:
    """Every rule file of ``config_dir`` (a missing file is empty); raises :class:`RulesError`
    listing every problem of every file when any is broken."""
    rules, problems = parse_rule_files(config_dir, read_rule_files(config_dir))
    if problems:
        raise RulesError(problems)
    return rules


def check_rule_text(file_name: str, text: str) -> list[str]:
    """The problems of ``text`` as the content of the rule file ``file_name`` (such as
    ``known_errors.yaml``), each as ``file_name:LINE: reason``: to check an edit before
    writing it."""
    attribute = {name: attribute for attribute, name in RULE_FILES.items()}[file_name]
    return _parse_file(file_name, file_name, attribute, text.encode("utf-8"))[1]


def check_rules(config_dir: str) -> list[str]:
    """Every problem of the rule files of ``config_dir`` as ``path:LINE: reason``."""
    return parse_rule_files(config_dir, read_rule_files(config_dir))[1]
