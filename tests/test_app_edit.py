"""The user's own edit becomes the step's accepted output: in the app (`e` opens $EDITOR) and headless
(`shake session --edit`); and the steering keys for a stalled step (edit its text, skip it)."""

from __future__ import annotations

import sys

import pytest

from app_helpers import make_app, on_screen, status_is, wait_for
from engine.store import DatasetStore
from engine.store.schema import Origin, RejectedKind
from helpers import worker_answer
from servers import FakeOllama
from tui.cli import main

A = 'print("hello")\nprint("bye")\n'
MINE = 'print("hello")\nprint("bye, by hand")\n'


@pytest.fixture
def editor(shake_env, monkeypatch):
    """$EDITOR: a program that saves MINE into the file it is given (as a user would by hand)."""
    program = shake_env / "my_editor.py"
    program.write_text(f"import sys, pathlib\npathlib.Path(sys.argv[-1]).write_text({MINE!r})\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {program}")
    monkeypatch.delenv("VISUAL", raising=False)


async def accept_in_editor(pilot, app):
    """`e`, the editor saves MINE, the user accepts the diff: the session is done with MINE."""
    await pilot.press("e")
    await wait_for(pilot, on_screen(app, "ConfirmDiffScreen"))
    await pilot.press("ctrl+r")
    await wait_for(pilot, status_is(app, "done"))
    assert app.session_screen.session.current_script == MINE


def worker_rows(data_dir):
    with DatasetStore(data_dir, writable=False) as store:
        return [r for r in store.rows() if r.agent == "worker"]


async def test_the_users_edit_in_editor_is_the_accepted_output(shake_env, editor):
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line"], "worker": [worker_answer(A)]})
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await accept_in_editor(pilot, app)
    rows = worker_rows(shake_env / "data")
    assert len(rows) == 1
    row = rows[0]
    assert row.chosen.script == MINE and row.chosen.origin == Origin.USER_EDIT
    assert row.rejected.kind == RejectedKind.FURTHER_EDIT and row.rejected.script == A  # the replaced proposal


async def test_an_edit_can_be_discarded(shake_env, editor):
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line"], "worker": [worker_answer(A)]})
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await pilot.press("e")
        await wait_for(pilot, on_screen(app, "ConfirmDiffScreen"))
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert app.session_screen.session.status == "review"
    assert worker_rows(shake_env / "data") == []


def test_headless_edit_makes_the_users_script_the_accepted_output(shake_env, editor, capsys):
    script = shake_env / "hello.py"
    script.write_text('print("hello")\n')
    out_file = shake_env / "out.py"
    with FakeOllama(model="m", reply=[worker_answer(A)]) as server:
        (shake_env / "config.toml").write_text(
            f'[teachers.o]\nbackend = "ollama"\nhost = "{server.url}"\nmodel = "m"\n')
        rc = main(["session", str(script), "--request", "say bye", "--edit", "--feedback", "/dev/null",
                   "--out", str(out_file)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "your edit is the step's accepted output" in out
    assert out_file.read_text() == MINE
    row = worker_rows(shake_env / "data")[0]
    assert row.chosen.origin == Origin.USER_EDIT and row.chosen.script == MINE


async def test_a_stalled_step_can_be_written_by_the_user_in_editor(shake_env, editor):
    """No proposal to edit: `e` opens the current script, and the user's script is the step's output;
    the failed attempts' rows get it as their chosen."""
    failing = {"planner": ["1. Add a goodbye line"], "worker": [worker_answer("raise SystemExit(3)\n")] * 10}
    app, _ = make_app(shake_env, failing, b_answers=failing)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "stalled"))
        assert "e writes the step yourself" in app.session_screen.query_one("#banner").text
        await accept_in_editor(pilot, app)
    rows = worker_rows(shake_env / "data")
    assert rows and all(r.rejected.kind == RejectedKind.ERROR for r in rows)
    assert all(r.chosen.script == MINE and r.chosen.origin == Origin.USER_EDIT for r in rows)


async def test_a_stalled_step_can_be_reworded_and_skipped(shake_env):
    failing = {"planner": ["1. Add a goodbye line\n2. Print a count"],
               "worker": [worker_answer("raise SystemExit(3)\n")] * 2 + [worker_answer(A)]}
    app, _ = make_app(shake_env, failing, b_answers={"worker": [worker_answer("raise SystemExit(3)\n")] * 10})
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "stalled"))
        screen = app.session_screen
        await pilot.press("E")
        await wait_for(pilot, on_screen(app, "AskTextScreen"))
        box = app.screen.query_one("#ask-input")
        box.value = "Print goodbye at the end"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.session.steps[0].text == "Print goodbye at the end" and not screen.busy)
        assert "Print goodbye at the end" in str(screen.query_one("#plan").get_option_at_index(0).prompt)
        await pilot.press("S")  # once: asks
        assert screen.session.step_index == 0
        await pilot.press("S")  # twice: skips, and the next step starts
        await wait_for(pilot, status_is(app, "review"))
        assert screen.session.step_index == 1
        assert screen.session.steps[0].status == "skipped"
        assert "– 1." in str(screen.query_one("#plan").get_option_at_index(0).prompt)
