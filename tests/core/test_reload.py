"""Hot reload of the rule files, driven by a task.Clock instead of real time."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import task

from flawless.server.rules import LineRule, Rules, RulesReloader

BLOCK_A = "- filename: shop/a.py\n"
BLOCK_B = "- filename: shop/b.py\n"
BROKEN_1 = "- filename: [\n"
BROKEN_2 = "- filename: 12\n"


class Recorder:
    """Collects what the reloader reports, as the server would receive it."""

    def __init__(self) -> None:
        self.reloaded: list[Rules] = []
        self.broken: list[tuple[list[str], str]] = []

    def on_reload(self, rules: Rules) -> None:
        self.reloaded.append(rules)

    def on_broken(self, problems: list[str], fingerprint: str) -> None:
        self.broken.append((problems, fingerprint))


def make(tmp_path: Path, text: str = BLOCK_A):
    (tmp_path / "building_blocks.yaml").write_text(text)
    clock = task.Clock()
    recorder = Recorder()
    reloader = RulesReloader(str(tmp_path), recorder.on_reload, recorder.on_broken,
                             interval=2.0, clock=clock)
    reloader.start()
    return reloader, clock, recorder


def edit(tmp_path: Path, text: str) -> None:
    (tmp_path / "building_blocks.yaml").write_text(text)


def filenames(rules: Rules) -> list[str]:
    return [entry.filename for entry in rules.building_blocks]


def test_current_holds_the_rules_at_start_and_unchanged_files_do_nothing(tmp_path: Path) -> None:
    reloader, clock, recorder = make(tmp_path)
    assert reloader.current.building_blocks == (
        LineRule("shop/a.py", source="building_blocks.yaml:1"),)
    clock.advance(2.0)
    clock.advance(2.0)
    assert recorder.reloaded == [] and recorder.broken == []
    reloader.stop()


def test_a_changed_file_is_picked_up_at_the_next_poll(tmp_path: Path) -> None:
    reloader, clock, recorder = make(tmp_path)
    edit(tmp_path, BLOCK_B)
    clock.advance(1.0)
    assert recorder.reloaded == []
    clock.advance(1.0)
    assert [filenames(rules) for rules in recorder.reloaded] == [["shop/b.py"]]
    assert reloader.current is recorder.reloaded[0]
    (tmp_path / "ignored_exceptions.yaml").write_text("- KeyboardInterrupt\n")
    clock.advance(2.0)
    assert recorder.reloaded[-1].ignored_exceptions == ("KeyboardInterrupt",)
    (tmp_path / "ignored_exceptions.yaml").unlink()
    clock.advance(2.0)
    assert len(recorder.reloaded) == 3 and recorder.reloaded[-1].ignored_exceptions == ()
    reloader.stop()


def test_a_broken_edit_keeps_the_rules_and_is_reported_once_per_version(tmp_path: Path) -> None:
    reloader, clock, recorder = make(tmp_path)
    before = reloader.current
    edit(tmp_path, BROKEN_1)
    for _ in range(5):
        clock.advance(2.0)
    assert reloader.current is before and recorder.reloaded == []
    assert len(recorder.broken) == 1
    problems, first_fingerprint = recorder.broken[0]
    assert problems[0].startswith(f"{tmp_path}/building_blocks.yaml:")
    edit(tmp_path, BROKEN_2)
    for _ in range(3):
        clock.advance(2.0)
    assert len(recorder.broken) == 2
    assert recorder.broken[1][0] == [f"{tmp_path}/building_blocks.yaml:1: "
                                     "filename must be a string, not an integer"]
    assert recorder.broken[1][1] != first_fingerprint
    assert reloader.current is before
    edit(tmp_path, BLOCK_B)
    clock.advance(2.0)
    assert [filenames(rules) for rules in recorder.reloaded] == [["shop/b.py"]]
    assert reloader.current is recorder.reloaded[0]
    reloader.stop()


def test_broken_at_start_is_reported_at_the_first_poll(tmp_path: Path) -> None:
    reloader, clock, recorder = make(tmp_path, BROKEN_2)
    assert reloader.current == Rules()
    clock.advance(2.0)
    clock.advance(2.0)
    assert len(recorder.broken) == 1
    reloader.stop()


def test_a_failing_callback_does_not_stop_the_polling(tmp_path: Path) -> None:
    (tmp_path / "building_blocks.yaml").write_text(BLOCK_A)
    clock = task.Clock()
    seen: list[Rules] = []

    def explode(rules: Rules) -> None:
        seen.append(rules)
        raise RuntimeError("the server failed to swap")

    reloader = RulesReloader(str(tmp_path), explode, lambda problems, fp: None, clock=clock)
    reloader.start()
    edit(tmp_path, BLOCK_B)
    clock.advance(2.0)
    edit(tmp_path, BLOCK_A)
    clock.advance(2.0)
    assert [filenames(rules) for rules in seen] == [["shop/b.py"], ["shop/a.py"]]
    reloader.stop()


def test_stop_ends_the_polling(tmp_path: Path) -> None:
    reloader, clock, recorder = make(tmp_path)
    reloader.stop()
    reloader.stop()  # stopping twice is harmless
    edit(tmp_path, BLOCK_B)
    clock.advance(10.0)
    assert recorder.reloaded == [] and clock.getDelayedCalls() == []
