"""The app driven by Textual's Pilot: a whole session, cancel, the trainer screen, and snapshots per theme."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from engine.config import load_config
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer, rows_json
from tui.app import ShakeApp

ORIGINAL = 'print("hello")\n'
A = 'print("hello")\nprint("bye")\n'
B = 'print("hello")\nprint("goodbye")\n'
C = 'print("hello")\nprint("goodbye!")\n'
D = 'print("hello")\nprint("goodbye!")\nprint(3)\n'


def make_app(shake_env, answers, *, delay_s=0.0, request="say goodbye, then count", **kw):
    script = shake_env / "hello.py"
    script.write_text(ORIGINAL)
    config = load_config()
    teacher = ScriptedTeacher("a", answers, delay_s=delay_s)
    pool = TeacherPool(config, extra={"a": teacher, "b": ScriptedTeacher("b")})
    return ShakeApp(script, request, config=config, pool=pool, check_ollama=False, **kw), teacher


async def wait_for(pilot, predicate, timeout=20.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app did not get there in time")


def session_of(app):
    return app.session_screen.session if app.session_screen else None


def status_is(app, status):
    return lambda: session_of(app) is not None and session_of(app).status == status and not app.session_screen.busy


async def give_feedback(pilot, app, text):
    app.session_screen.query_one("#feedback-input").focus()
    await pilot.press(*text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "label-confirm")


async def test_a_whole_session_through_the_app(shake_env):
    app, teacher = make_app(shake_env, {
        "planner": ["1. Add a goodbye line\n2. Print a count"],
        "worker": [worker_answer(A), worker_answer(B), worker_answer(C), worker_answer(D)],
        "analyzer": ["EDIT", "REDO"],
    })
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        diff = app.session_screen.query_one("#diff")
        assert diff.after == A
        # explicit prefix: the analyzer is not asked; Enter commits the shown label
        await give_feedback(pilot, app, "redo: wrong word")
        assert "Redo" in str(app.session_screen.query_one("#label-confirm").render())
        await pilot.press("enter")
        await wait_for(pilot, lambda: status_is(app, "review")() and app.session_screen.query_one("#diff").after == B)
        # free text: the analyzer says EDIT; committed as Further edit
        await give_feedback(pilot, app, "partly right, add an exclamation mark")
        await pilot.press("enter")
        await wait_for(pilot, lambda: status_is(app, "review")() and app.session_screen.query_one("#diff").after == C)
        # the analyzer misreads "perfect" as REDO; one key overrides it before it is committed
        await give_feedback(pilot, app, "perfect")
        assert "Redo" in str(app.session_screen.query_one("#label-confirm").render())
        await pilot.press("a")
        await pilot.press("enter")
        await wait_for(pilot, lambda: status_is(app, "review")() and app.session_screen.query_one("#diff").after == D)
        await give_feedback(pilot, app, "accept: good")
        await pilot.press("enter")
        await wait_for(pilot, status_is(app, "done"))
        rows = rows_json(app.store)
        assert [r["rejected"]["kind"] if r["rejected"] else None for r in rows] == ["redo", "further_edit", None]
        assert all(r["chosen"]["script"] == C for r in rows[:2]) and rows[2]["chosen"]["script"] == D
        assert session_of(app).current_script == D
        # history: up brings back the last feedback
        app.session_screen.query_one("#feedback-input").focus()
        await pilot.press("up")
        assert app.session_screen.query_one("#feedback-input").value == "accept: good"


async def test_escape_cancels_a_generation_and_the_session_goes_on(shake_env):
    app, teacher = make_app(shake_env, {"worker": [worker_answer(A) * 30, worker_answer(B)]}, delay_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: any(agent == "worker" for agent, _ in teacher.calls))
        await pilot.press("escape")
        await wait_for(pilot, status_is(app, "working"))
        assert rows_json(app.store) == []
        assert session_of(app).state.step.cycle == 0  # the cancelled cycle left no trace
        await pilot.press("ctrl+g")
        await wait_for(pilot, status_is(app, "review"))
        assert session_of(app).pending_proposal().script == B


async def test_help_screen_lists_every_binding_id(shake_env):
    app, _ = make_app(shake_env, {})
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f1")
        table = app.screen.query_one("#help-table")
        ids = {table.get_row_at(i)[2] for i in range(table.row_count)}
        assert {"app.help", "session.cancel", "session.copy_diff", "feedback.commit", "trainer.start"} <= ids
        await pilot.press("escape")


async def test_keys_can_be_remapped_from_the_config(shake_env):
    with open(shake_env / "config.toml", "a") as f:
        f.write('[ui.keys]\n"session.toggle_split" = "ctrl+t"\n')
    app, _ = make_app(shake_env, {"worker": [worker_answer(A)]})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        app.session_screen.query_one("#plan").focus()
        diff = app.session_screen.query_one("#diff")
        assert diff.split
        await pilot.press("ctrl+t")
        assert not diff.split


async def test_copy_to_clipboard_notifies(shake_env):
    app, _ = make_app(shake_env, {"worker": [worker_answer(A)]})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        copied = []
        app.copy_to_clipboard = copied.append
        app.session_screen.query_one("#plan").focus()
        await pilot.press("x")
        assert copied == [A]
        assert any("Copied the script" in n.message for n in app._notifications)


async def test_trainer_screen_runs_a_real_training_and_draws_its_curve(shake_env, dataset, tiny_student, monkeypatch):
    monkeypatch.setenv("SHAKE_DATA", str(dataset))
    config = load_config()
    app = ShakeApp(config=config, check_ollama=False, train_args=[
        "--student", tiny_student, "--max-steps", "3", "--batch-size", "2", "--eval-fraction", "0",
        "--checkpoint-every", "3", "--lora-r", "4", "--max-length", "1024"])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        screen = app.screen
        await pilot.press("t")
        await wait_for(pilot, lambda: "finished" in str(screen.query_one("#run-info").render()), timeout=240)
        await wait_for(pilot, lambda: screen.shown_steps == 3, timeout=10)
        assert (screen.run_dir / "DONE").exists()
        assert screen.query_one("#progress").progress == 3


# -- snapshots ---------------------------------------------------------------------------------
THEMES = ["shake-dark", "shake-light", "shake-high-contrast"]


@pytest.fixture
def fixed_ids(monkeypatch):
    counter = itertools.count(1)
    monkeypatch.setattr("engine.store.store.new_id", lambda: f"id{next(counter):04d}")


def snapshot_app(shake_env, theme):
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line\n2. Print a count"], "worker": [worker_answer(A)]})
    app.ui_state.set("theme", theme)
    return app


async def settle(pilot, app, mode):
    await wait_for(pilot, status_is(app, "review"))
    if mode != "session":
        await pilot.press({"dataset": "f3", "trainer": "f4", "help": "f1"}[mode])
    await pilot.pause(0.2)
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    app.clear_notifications()
    await pilot.pause(0.1)


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("mode", ["session", "dataset", "trainer", "help"])
def test_snapshot(snap_compare, shake_env, fixed_ids, theme, mode):
    app = snapshot_app(shake_env, theme)
    assert snap_compare(app, terminal_size=(120, 36), run_before=lambda pilot: settle(pilot, app, mode))


@pytest.mark.parametrize("theme", THEMES)
def test_snapshot_new_session(snap_compare, shake_env, fixed_ids, theme, monkeypatch):
    # A relative script keeps the file tree's root label the same on every machine.
    monkeypatch.chdir(shake_env)
    (shake_env / "hello.py").write_text(ORIGINAL)
    config = load_config()
    app = ShakeApp(Path("hello.py"), "", config=config, pool=TeacherPool(config, extra={"a": ScriptedTeacher("a")}),
                   check_ollama=False)
    app.ui_state.set("theme", theme)

    async def opened(pilot):
        await wait_for(pilot, lambda: type(app.screen).__name__ == "NewSessionScreen")
        await pilot.pause(0.3)
        for widget in app.screen.query("Input, TextArea"):
            widget.cursor_blink = False
        app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(120, 36), run_before=opened)
