"""The rules in force: loaded at start, reloaded on edits, kept when an edit breaks them.

Driven by a task.Clock instead of real time.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import task

from flawless.server.core.model import LineRule, Rules
from flawless.server.rules.reloading import RulesService

BLOCK_A = "- filename: shop/a.py\n"
BLOCK_B = "- filename: shop/b.py\n"
BROKEN_1 = "- filename: [\n"
BROKEN_2 = "- filename: 12\n"


def make(tmp_path: Path, text: str = BLOCK_A, broken: list = None):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    if text is not None:
        (config / "building_blocks.yaml").write_text(text)
    clock = task.Clock()
    reported = broken if broken is not None else []
    service = RulesService(str(config), str(tmp_path / "data"), reported.append, clock=clock)
    service.startService()
    return service, clock, reported


def edit(tmp_path: Path, text: str) -> None:
    (tmp_path / "config" / "building_blocks.yaml").write_text(text)


def filenames(rules: Rules) -> list[str]:
    return [entry.filename for entry in rules.building_blocks]


def test_the_rules_are_in_force_from_the_start_and_unchanged_files_do_nothing(tmp_path) -> None:
    service, clock, reported = make(tmp_path)
    assert service.current.building_blocks == (
        LineRule("shop/a.py", source="building_blocks.yaml:1"),)
    before = service.current
    clock.advance(2.0)
    clock.advance(2.0)
    assert service.current is before and reported == [] and service.problems == ()
    service.stopService()


def test_a_changed_file_is_picked_up_at_the_next_poll(tmp_path: Path) -> None:
    service, clock, _ = make(tmp_path)
    edit(tmp_path, BLOCK_B)
    clock.advance(1.0)
    assert filenames(service.current) == ["shop/a.py"]
    clock.advance(1.0)
    assert filenames(service.current) == ["shop/b.py"]
    (tmp_path / "config" / "ignored_exceptions.yaml").write_text("- KeyboardInterrupt\n")
    clock.advance(2.0)
    assert service.current.ignored_exceptions == ("KeyboardInterrupt",)
    (tmp_path / "config" / "ignored_exceptions.yaml").unlink()
    clock.advance(2.0)
    assert service.current.ignored_exceptions == ()
    service.stopService()


def test_channels_yaml_is_reloaded_and_a_broken_one_keeps_the_channels_in_force(tmp_path):
    service, clock, reported = make(tmp_path)
    channels = tmp_path / "config" / "channels.yaml"
    channels.write_text("- {filepath: shop, channels: [slack]}\n")
    clock.advance(2.0)
    assert [rule.channels for rule in service.current.channels] == [("slack",)]
    channels.write_text("- {filepath: shop, channels: [pager]}\n")
    clock.advance(2.0)
    assert [rule.channels for rule in service.current.channels] == [("slack",)]
    assert reported and "channels.yaml:1" in reported[0][0]
    service.stopService()


def test_a_broken_edit_keeps_the_rules_and_is_reported_once_per_version(tmp_path) -> None:
    service, clock, reported = make(tmp_path)
    before = service.current
    edit(tmp_path, BROKEN_1)
    for _ in range(5):
        clock.advance(2.0)
    assert service.current is before and len(reported) == 1
    assert reported[0][0].startswith(f"{tmp_path}/config/building_blocks.yaml:")
    assert service.problems == tuple(reported[0])
    edit(tmp_path, BROKEN_2)
    for _ in range(3):
        clock.advance(2.0)
    assert reported[1] == [f"{tmp_path}/config/building_blocks.yaml:1: "
                           "filename must be a string, not an integer"]
    assert len(reported) == 2 and service.current is before
    edit(tmp_path, BLOCK_B)
    clock.advance(2.0)
    assert filenames(service.current) == ["shop/b.py"] and service.problems == ()
    service.stopService()


def test_broken_at_start_the_last_rules_that_loaded_apply(tmp_path: Path) -> None:
    service, clock, _ = make(tmp_path, BLOCK_A)
    service.stopService()
    edit(tmp_path, BROKEN_2)
    reported: list = []
    restarted, clock, _ = make(tmp_path, None, reported)
    assert filenames(restarted.current) == ["shop/a.py"]
    assert "the last rules that loaded" in restarted.in_force
    assert len(reported) == 1 and restarted.problems
    restarted.stopService()
    # The same broken files at a further restart are not reported again.
    again, _, _ = make(tmp_path, None, reported)
    assert len(reported) == 1 and filenames(again.current) == ["shop/a.py"]
    again.stopService()


def test_broken_at_start_with_nothing_loaded_before_means_no_rules(tmp_path: Path) -> None:
    service, _, reported = make(tmp_path, BROKEN_2)
    assert service.current == Rules() and len(reported) == 1
    assert service.in_force.startswith("none")
    service.stopService()


def test_a_failing_report_does_not_stop_the_polling(tmp_path: Path) -> None:
    def explode(problems: list) -> None:
        raise RuntimeError("the mail could not be queued")

    (tmp_path / "config").mkdir()
    edit(tmp_path, BLOCK_A)
    clock = task.Clock()
    service = RulesService(str(tmp_path / "config"), str(tmp_path / "data"), explode,
                           clock=clock)
    service.startService()
    edit(tmp_path, BROKEN_1)
    clock.advance(2.0)
    edit(tmp_path, BLOCK_B)
    clock.advance(2.0)
    assert filenames(service.current) == ["shop/b.py"]
    service.stopService()


def test_files_of_the_original_flawless_are_read(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "known_errors").write_text(
        '["comment", {"filename": "shop/a.py", "function_name": "None", '
        '"code_fragment": "None", "alert_every_n_occurences": 5}]')
    (config / "email_remapping").write_text(
        '[" a comment", {"remap": "old@example.com", "to": "new@example.com"}]')
    service, _, reported = make(tmp_path, None)
    assert reported == []
    known = service.current.known_errors[0]
    assert (known.function_name, known.code_fragment) == (None, None)
    assert known.alert_every_n_occurrences == 5
    assert service.current.email_remapping == {"old@example.com": "new@example.com"}
    service.stopService()


def test_stop_ends_the_polling(tmp_path: Path) -> None:
    service, clock, _ = make(tmp_path)
    service.stopService()
    edit(tmp_path, BLOCK_B)
    clock.advance(10.0)
    assert filenames(service.current) == ["shop/a.py"] and clock.getDelayedCalls() == []


def test_running_out_of_descriptors_is_not_a_broken_rule_file(tmp_path, monkeypatch) -> None:
    """A flood of sockets can use up the process's descriptors: a poll that cannot open the
    files then keeps the rules in force and reports nothing broken."""
    import builtins
    import errno

    service, clock, reported = make(tmp_path)
    before = service.current
    edit(tmp_path, BLOCK_B)
    real_open = builtins.open

    def exhausted(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).startswith(str(tmp_path / "config")):
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", exhausted)
    clock.advance(2.0)
    assert service.current is before and service.problems == () and reported == []
    monkeypatch.setattr(builtins, "open", real_open)
    clock.advance(2.0)
    assert filenames(service.current) == ["shop/b.py"] and reported == []
    service.stopService()
