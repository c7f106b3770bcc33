"""The app driven by Textual's Pilot: a whole session, cancel, the trainer screen, and snapshots per theme."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app_helpers import ORIGINAL, give_feedback, make_app, on_screen, session_of, status_is, wait_for
from engine.config import load_config
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer, rows_json
from tui.app import ShakeApp

A = 'print("hello")\nprint("bye")\n'
B = 'print("hello")\nprint("goodbye")\n'
C = 'print("hello")\nprint("goodbye!")\n'
D = 'print("hello")\nprint("goodbye!")\nprint(3)\n'


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
        # Evaluate needs held-out rows and this run has none: the reason is on screen, and the
        # finished run stays finished (issue #15 item 5).
        await pilot.press("v")
        results = screen.query_one("#eval-results")
        await wait_for(pilot, lambda: "failed" in str(results.render()), timeout=240)
        assert "this run has no held-out rows" in str(results.render())
        assert results.has_class("error-text")
        assert "finished" in str(screen.query_one("#run-info").render())


# -- snapshots ---------------------------------------------------------------------------------
THEMES = ["shake-dark", "shake-light", "shake-high-contrast"]


@pytest.fixture
def fixed_ids(monkeypatch):
    counter = itertools.count(1)
    monkeypatch.setattr("engine.store.store.new_id", lambda: f"id{next(counter):04d}")


def for_snapshot(app, theme):
    """The theme to show; no animations, so that a tab's underline is never caught mid-way."""
    app.ui_state.set("theme", theme)
    app.animation_level = "none"
    return app


def snapshot_app(shake_env, theme):
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line\n2. Print a count"], "worker": [worker_answer(A)]})
    return for_snapshot(app, theme)


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
    pool = TeacherPool(config, extra={"a": ScriptedTeacher("a"), "b": ScriptedTeacher("b")})
    app = for_snapshot(ShakeApp(Path("hello.py"), "", config=config, pool=pool, check_ollama=False), theme)

    async def opened(pilot):
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        tree = app.screen.query_one("#picker")
        await wait_for(pilot, lambda: len(tree.root.children) > 0)  # the tree lists the folder in a worker
        await wait_for(pilot, lambda: app.teacher_status)  # the status bar shows the health check's result
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.3)
        for widget in app.screen.query("Input, TextArea"):
            widget.cursor_blink = False
        app.clear_notifications()
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(120, 36), run_before=opened)


# -- snapshots of the screens added for issues #15 and #17 ----------------------------------------
async def quiet(pilot, app):
    """The screen as it settles: every worker done (a diff or a folder listing computed in the background
    renders late on a loaded machine), animations over, the cursors still and no toasts."""
    await app.workers.wait_for_complete()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.1)
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    app.clear_notifications()


async def reviewed_and_accepted(pilot, app):
    await wait_for(pilot, status_is(app, "review"))
    await give_feedback(pilot, app, "accept: good")
    await pilot.press("enter")
    await wait_for(pilot, status_is(app, "review"))  # the second step's proposal


@pytest.mark.parametrize("theme", THEMES)
def test_snapshot_save(snap_compare, shake_env, fixed_ids, theme, monkeypatch):
    monkeypatch.chdir(shake_env)  # paths are shown relative to it: the same on every machine
    app = snapshot_app(shake_env, theme)

    async def run_before(pilot):
        await reviewed_and_accepted(pilot, app)
        app.session_screen.query_one("#diff").focus()
        await pilot.press("w")
        await wait_for(pilot, on_screen(app, "SaveScreen"))
        await pilot.pause(0.3)
        await quiet(pilot, app)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


@pytest.mark.parametrize("theme", THEMES)
def test_snapshot_stalled(snap_compare, shake_env, fixed_ids, theme):
    failing = {"planner": ["1. Add a goodbye line"], "worker": [worker_answer("raise SystemExit(3)\n")] * 10}
    app, _ = make_app(shake_env, failing, b_answers=failing)
    for_snapshot(app, theme)

    async def run_before(pilot):
        await wait_for(pilot, status_is(app, "stalled"))
        await pilot.press("1")
        await pilot.pause(0.3)
        await quiet(pilot, app)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def found_on_this_machine():
    from engine.teachers.discovery import Discovery, FoundModel, FoundServer

    url = "http://127.0.0.1:11434"
    models = (FoundModel("ollama", url, "qwen2.5-coder:7b", 4683075271, "qwen2", "7.6B", "Q4_K_M", 32768, True,
                         blob_status="readable", logprobs="yes"),
              FoundModel("ollama", url, "llama3.2:3b", 2019393189, "llama", "3.2B", "Q4_0", 131072, True,
                         blob_status="readable", logprobs="yes"))
    return Discovery((FoundServer("ollama", url, True, "Ollama 0.13.0", "0.13.0", models=models),
                      FoundServer("openai", "http://127.0.0.1:8080", False, problem="not running")), 0.05)


@pytest.mark.parametrize("theme", THEMES)
def test_snapshot_first_start_hint(snap_compare, shake_env, fixed_ids, theme):
    app, _ = make_app(shake_env, {}, script=False)
    for_snapshot(app, theme)

    async def run_before(pilot):
        await pilot.pause(0.2)
        app.post_message(ShakeApp.TeachersFound(found_on_this_machine(), True))
        await wait_for(pilot, lambda: app.session_screen.query_one("#discovery-hint").display)
        await pilot.pause(0.2)
        await quiet(pilot, app)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)



async def open_sessions(pilot, app):
    await pilot.press("f5")


async def open_quit_question(pilot, app):
    from tui.screens.quit import QuitScreen

    app.push_screen(QuitScreen("run-20260101-120000", "step 12/50"))


async def open_trainer_settings(pilot, app):
    await pilot.press("f4", "c")


async def open_your_edit(pilot, app):
    from tui.screens.ask import ConfirmDiffScreen

    app.push_screen(ConfirmDiffScreen("Your edit of the proposal", "Accepting makes your script the step's output.",
                                      A, 'print("hello")\nprint("bye, by hand")\n', "Accept my edit",
                                      names=("proposal: hello.py", "your edit: hello.py")))


async def open_step_text(pilot, app):
    app.session_screen.query_one("#diff").focus()
    await pilot.press("E")


DIALOGS = {"sessions": (open_sessions, "SessionsScreen"), "quit_while_training": (open_quit_question, "QuitScreen"),
           "trainer_settings": (open_trainer_settings, "TrainSettingsScreen"),
           "your_edit": (open_your_edit, "ConfirmDiffScreen"), "step_text": (open_step_text, "AskTextScreen")}


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("dialog", list(DIALOGS))
def test_snapshot_dialog(snap_compare, shake_env, fixed_ids, theme, dialog):
    """The dialogs a reviewing session opens: saved sessions, the quit question while training, the
    trainer settings, the user's edit, the step's text."""
    app = snapshot_app(shake_env, theme)
    opener, screen = DIALOGS[dialog]

    async def run_before(pilot):
        await wait_for(pilot, status_is(app, "review"))
        await opener(pilot, app)
        await wait_for(pilot, on_screen(app, screen))
        await pilot.pause(0.2)
        await quiet(pilot, app)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)
