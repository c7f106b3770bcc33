"""The app's small pure pieces: wrapping streamed text, saving a script safely, the dataset filter."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from engine.errors import InputError
from tui.row_view import RowFilter, RowView
from tui.script_file import plan_save, save
from tui.widgets.wrapped_log import wrap_line

# Text as models write it: ASCII, spaces, accented and wide (CJK, emoji) characters.
texts = st.text(st.sampled_from(list("abc xyz_()=\"'") + ["é", "漢", "字", "🙂"]), max_size=300)


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(min_value=1, max_value=120))
def test_wrapping_keeps_every_character_in_order_and_no_row_is_wider_than_the_pane(line, width):
    rows = wrap_line(line, width)
    assert "".join(rows) == line
    # wider only where one character is wider than the whole pane (a wide glyph in a 1-column pane)
    assert all(cell_len(row) <= width or len(row) == 1 for row in rows)
    assert rows and all(rows[:-1])  # no empty row inside a line


def test_a_break_falls_after_a_space_when_there_is_one():
    assert wrap_line("alpha beta gamma", 12) == ["alpha beta ", "gamma"]
    assert wrap_line("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_save_keeps_the_files_permissions_and_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real.py"
    real.write_text("print(1)\n")
    os.chmod(real, 0o755)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    plan = plan_save(link, "print(2)\n", session_file=link, started_from="print(1)\n")
    assert not plan.changed_since_start and "+print(2)" in plan.diff
    backup = save(plan, tmp_path / "backups")
    assert link.is_symlink() and real.read_text() == "print(2)\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o755
    assert backup.read_text() == "print(1)\n"


def test_save_refuses_a_diff_that_went_stale_and_never_overwrites_it(tmp_path):
    target = tmp_path / "s.py"
    target.write_text("print(1)\n")
    plan = plan_save(target, "print(2)\n", session_file=target, started_from="print(1)\n")
    target.write_text("print('changed meanwhile')\n")
    with pytest.raises(InputError, match="changed on disk since the diff was shown"):
        save(plan, tmp_path / "backups")
    assert target.read_text() == "print('changed meanwhile')\n"
    assert not (tmp_path / "backups").exists()


def test_a_file_changed_since_the_session_started_is_said_so(tmp_path):
    target = tmp_path / "s.py"
    target.write_text("print('edited by hand')")  # no final newline: compared as the engine reads it
    assert plan_save(target, "x = 1\n", session_file=target, started_from="print(1)\n").changed_since_start
    target.write_text("print(1)")
    assert not plan_save(target, "x = 1\n", session_file=target, started_from="print(1)\n").changed_since_start
    elsewhere = plan_save(tmp_path / "new.py", "x = 1\n", session_file=target, started_from="print(1)\n")
    assert elsewhere.on_disk is None and not elsewhere.changed_since_start
    with pytest.raises(InputError):
        plan_save(tmp_path, "x = 1\n", session_file=target, started_from="")


def row(**kw) -> RowView:
    base = dict(row_id="r1", session_id="abc123", step_number=2, cycle=1, agent="worker", rejected_kind="redo",
                accepted=True, teacher="qwen", logprob_tokens=3, logprobs_blob="", prompt="make it print",
                chosen="print('bye')", rejected="print('hi')", excluded="")
    return RowView(**{**base, **kw})


@pytest.mark.parametrize("query, matches", [
    ("", True), ("session:abc", True), ("session:zzz", False), ("agent:worker", True), ("agent:lead", False),
    ("kind:redo", True), ("kind:none", False), ("teacher:QW", True), ("step:2", True), ("step:3", False),
    ("excluded:no", True), ("excluded:yes", False), ("BYE", True), ("bye nothing-like-this", False),
    ('"make it"', True),
])
def test_the_dataset_filter(query, matches):
    assert RowFilter.parse(query).matches(row()) is matches


def test_kind_none_and_excluded_yes():
    assert RowFilter.parse("kind:none").matches(row(rejected_kind=""))
    assert RowFilter.parse("excluded:yes").matches(row(excluded="wrong label"))


def test_several_files_are_saved_all_or_none_each_with_its_backup(tmp_path, monkeypatch):
    from tui.script_file import save_all

    script, module = tmp_path / "report.py", tmp_path / "sales.py"
    script.write_text("import sales\n")
    module.write_text("def total():\n    return 1\n")
    new_file = tmp_path / "money.py"

    def plans():
        return [plan_save(script, "import sales, money\n", session_file=script, started_from="import sales\n"),
                plan_save(module, "def total():\n    return 2\n", session_file=script, started_from="import sales\n"),
                plan_save(new_file, "X = 1\n", session_file=script, started_from="import sales\n")]

    real_replace, calls = os.replace, []

    def failing_third(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_third)
    with pytest.raises(InputError, match="nothing was saved"):
        save_all(plans(), tmp_path / "backups")
    monkeypatch.setattr(os, "replace", real_replace)
    # the two files replaced before the failure have their old text back; no temporary file is left
    assert script.read_text() == "import sales\n" and module.read_text() == "def total():\n    return 1\n"
    assert not new_file.exists() and not list(tmp_path.glob(".*.tmp"))
    stale = plans()
    module.write_text("edited meanwhile\n")
    with pytest.raises(InputError, match="sales.py changed on disk"):
        save_all(stale, tmp_path / "backups2")
    assert script.read_text() == "import sales\n" and not (tmp_path / "backups2").exists()
    module.write_text("def total():\n    return 1\n")
    backups = save_all(plans(), tmp_path / "backups3")
    assert script.read_text() == "import sales, money\n" and new_file.read_text() == "X = 1\n"
    assert [b.read_text() if b else None for b in backups] == ["import sales\n", "def total():\n    return 1\n", None]
