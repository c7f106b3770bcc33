"""Issue #15, "the app finishes the job": one Pilot test (or more) per numbered problem.

Each test drives the app as a user would (keys) and checks what the user sees and what lands on
disk. Every one of them fails on the app as it was when the issue was filed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app_helpers import (ORIGINAL, give_feedback, make_app, notes, on_screen, rendered, screen_text, session_of,
                         status_is, wait_for)
from engine.config import load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer

A = 'print("hello")\nprint("bye")\n'
ONE_STEP = {"planner": ["1. Add a goodbye line"], "worker": [worker_answer(A)]}


async def accept(pilot, app):
    await give_feedback(pilot, app, "accept: good")
    await pilot.press("enter")
    await wait_for(pilot, status_is(app, "done"))


# -- 1. the result leaves the app ---------------------------------------------------------------
async def test_save_shows_the_diff_writes_the_script_and_keeps_a_backup(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await accept(pilot, app)
        assert "w saves the script" in app.session_screen.query_one("#banner").text
        await pilot.press("w")
        await wait_for(pilot, on_screen(app, "SaveScreen"))
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert '+ print("bye")' in shown or 'print("bye")' in shown  # the diff against the file on disk
        assert "kept under" in rendered(app.screen.query_one("#save-warning"))
        await pilot.press("ctrl+r")
        await wait_for(pilot, on_screen(app, "SessionScreen"))
    assert (shake_env / "hello.py").read_text() == A
    backups = list((shake_env / "data" / "backups").iterdir())
    assert len(backups) == 1 and backups[0].read_text() == ORIGINAL
    assert any("Saved" in n for n in notes(app))


async def test_save_asks_before_overwriting_a_file_changed_since_the_session_started(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await accept(pilot, app)
        (shake_env / "hello.py").write_text('print("edited by hand meanwhile")\n')
        await pilot.press("w")
        await wait_for(pilot, on_screen(app, "SaveScreen"))
        await pilot.pause(0.2)
        assert "changed on disk since the session started" in rendered(app.screen.query_one("#save-warning"))
        assert "Overwrite" in str(app.screen.query_one("#save-confirm").label)
        assert app.focused.id == "save-cancel"  # the safe choice has the focus
        await pilot.press("escape")
        await wait_for(pilot, on_screen(app, "SessionScreen"))
    assert (shake_env / "hello.py").read_text() == 'print("edited by hand meanwhile")\n'


async def test_save_as_writes_another_file_and_leaves_the_original(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    target = shake_env / "copy.py"
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await accept(pilot, app)
        app.session_screen.query_one("#diff").focus()
        await pilot.press("W")
        await wait_for(pilot, on_screen(app, "SaveScreen"))
        path_box = app.screen.query_one("#save-path")
        assert app.focused is path_box
        path_box.value = str(target)
        await pilot.press("enter")  # shows the diff for this file
        await pilot.pause(0.2)
        assert "does not exist yet" in rendered(app.screen.query_one("#save-warning"))
        await pilot.press("ctrl+r")
        await wait_for(pilot, on_screen(app, "SessionScreen"))
    assert target.read_text() == A
    assert (shake_env / "hello.py").read_text() == ORIGINAL


# -- 2. quitting --------------------------------------------------------------------------------
async def test_ctrl_q_during_generation_cancels_it_at_once_and_writes_nothing_after(shake_env):
    # The worker streams a long answer slowly, as a local 7B model does (~30 s for all of it).
    app, teacher = make_app(shake_env, {"worker": [worker_answer(A) * 40]}, delay_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: teacher.streamed > 0)
        rows_before = sum(1 for _ in app.store.rows())
        await pilot.press("ctrl+q")
        engine = [w for w in app.workers if w.group == "engine"]
        while any(not w.is_finished for w in engine):  # a hang is pytest-timeout's to report
            await asyncio.sleep(0.01)
    # at once: the generation was stopped by its cancel event, mid-answer (checked before every token),
    # instead of running to the end of the answer
    assert teacher.cancelled == 1 and teacher.streamed < len(worker_answer(A) * 40) // 4
    assert app.return_code == 0
    with DatasetStore(shake_env / "data") as store:
        assert sum(1 for _ in store.rows()) == rows_before
        state = store.load_state(store.session_ids()[0])
    assert state.step.cycle == 0  # the interrupted cycle left nothing behind


STAND_IN_TRAINER = '''
import json, pathlib, sys, time
args = sys.argv[1:]
run = pathlib.Path(args[args.index("--run-dir") + 1]); stop = pathlib.Path(args[args.index("--stop-file") + 1])
run.mkdir(parents=True, exist_ok=True)
(run / "args.json").write_text(json.dumps(args))
(run / "config.json").write_text("{}")
for step in range(1, 600):
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "total_steps": 600, "loss": 1.0 / step, "kd": 0.5, "odds_ratio": 0.2,
                            "nll": 0.3, "tokens_per_s": 100}) + "\\n")
    if stop.exists():
        sys.exit(0)
    time.sleep(0.1)
'''


@pytest.fixture
def stand_in_trainer(shake_env):
    """A process that behaves like `shake train` for the app: metrics lines, the stop file."""
    path = shake_env / "stand_in_trainer.py"
    path.write_text(STAND_IN_TRAINER)
    return [__import__("sys").executable, str(path)]


def scripted_session(shake_env, *, accept: bool) -> str:
    """A session on hello.py written through the engine with scripted teachers, left at its first
    proposal or with that step accepted; its id."""
    from engine.agents.analyzer import Classification

    config = load_config()
    pool = TeacherPool(config, extra={"a": ScriptedTeacher("a", ONE_STEP), "b": ScriptedTeacher("b")})
    (shake_env / "hello.py").write_text(ORIGINAL)
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, pool, config, shake_env / "hello.py", "say bye")
        session.plan()
        session.propose()
        if accept:
            session.apply_feedback(Classification("accepted", "explicit", "good", ""))
        return session.id


def accepted_row(shake_env):
    """One accepted step in the dataset, written through the engine (the trainer wants one)."""
    scripted_session(shake_env, accept=True)


async def test_quit_while_training_asks_and_a_run_left_running_is_found_again(shake_env, stand_in_trainer):
    import os
    import signal

    accepted_row(shake_env)
    app, _ = make_app(shake_env, {}, script=False, train_command=stand_in_trainer)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.press("t")
        await wait_for(pilot, lambda: app.screen.shown_steps >= 2)
        pid = app.training.record.pid
        await pilot.press("ctrl+q")
        await wait_for(pilot, on_screen(app, "QuitScreen"))
        assert "is going" in screen_text(app)
        await pilot.press("l")  # leave it running
    try:
        os.kill(pid, 0)  # still running after the app is gone
        again, _ = make_app(shake_env, {}, script=False, train_command=stand_in_trainer)
        async with again.run_test(size=(120, 40)) as pilot:
            assert any("still going" in n for n in notes(again))
            await pilot.press("f4")
            info = again.screen.query_one("#run-info")
            await wait_for(pilot, lambda: f"running (pid {pid})" in rendered(info))
            seen = again.screen.shown_steps
            await wait_for(pilot, lambda: again.screen.shown_steps > seen, what="the curves did not move")
            await pilot.press("S")  # stops it through its stop file
            await wait_for(pilot, lambda: "stopped" in rendered(info), timeout=10)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_quit_while_training_can_stop_the_run(shake_env, stand_in_trainer):
    accepted_row(shake_env)
    app, _ = make_app(shake_env, {}, script=False, train_command=stand_in_trainer)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4", "t")
        await wait_for(pilot, lambda: app.screen.shown_steps >= 1)
        run = app.training
        await pilot.press("ctrl+q")
        await wait_for(pilot, on_screen(app, "QuitScreen"))
        await pilot.press("s")
    run.popen.wait(timeout=10)  # it saw its stop file and ended
    assert run.record.stop_file.exists()
    assert app.ui_state.get("training") is None  # not found again at the next start


# -- 3. a stalled step ----------------------------------------------------------------------------
async def test_a_stalled_step_says_so_and_what_helps(shake_env):
    failing = {"planner": ["1. Add a goodbye line"], "worker": [worker_answer("raise SystemExit(3)\n")] * 10}
    app, _ = make_app(shake_env, failing, b_answers=failing)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "stalled"))
        await pilot.pause(0.2)
        banner = app.session_screen.query_one("#banner").text
        # switch_teacher_after = 2, two worker teachers
        assert "Step 1 stalled after 4 attempts" in banner
        assert "Exit code 3" in banner
        assert "ctrl+g tries again" in banner
        plan = app.session_screen.query_one("#plan")
        assert "stalled after 4 attempts" in str(plan.get_option_at_index(0).prompt)
        status = rendered(app.session_screen.query_one("#status"))
        assert "stalled after 4 attempts" in status and "0 failed" not in status
        assert not any("shake session --resume" in n for n in notes(app))
        await pilot.pause(1.0)
        assert "stalled after 4 attempts" in app.session_screen.query_one("#banner").text  # it stays


# -- 4. the new-session form ----------------------------------------------------------------------
async def test_new_session_form_keeps_what_was_typed_and_loses_no_key(shake_env):
    app, _ = make_app(shake_env, ONE_STEP, request="")  # `shake app SCRIPT` without -r
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        await pilot.pause(0.1)
        assert app.focused.id == "request-text"  # the script is known: typing goes to the request
        await pilot.press(*"say bye")
        await pilot.press("tab")
        assert app.focused.id == "teacher-list"
        await pilot.press(*" too")  # the space unticks `a`; the letters are the request's
        request = app.screen.query_one("#request-text")
        assert request.text == "say byetoo"
        assert app.focused.id == "request-text"
        listing = app.screen.query_one("#teacher-list")  # the tick is said in words, not only by colour
        assert str(listing.get_option_at_index(0).prompt).startswith("[ ] a")
        assert "The worker uses: b" in rendered(app.screen.query_one("#teacher-summary"))
        listing.focus()
        await pilot.press("tab")
        assert app.focused.id == "start"
        await pilot.press("escape")  # closed ...
        await wait_for(pilot, on_screen(app, "SessionScreen"))
        await pilot.press("ctrl+n")  # ... and opened again: the draft is there
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        assert app.screen.query_one("#request-text").text == "say byetoo"
        assert str(app.screen.query_one("#teacher-list").get_option_at_index(0).prompt).startswith("[ ] a")
        await pilot.press("ctrl+r")  # starts from anywhere, also where ctrl+enter never arrives
        await wait_for(pilot, status_is(app, "review"))
    assert app.pool.names_for("worker") == ["b"]


async def test_typing_in_the_file_tree_after_a_pick_goes_to_the_request(shake_env, monkeypatch):
    monkeypatch.chdir(shake_env)
    app, _ = make_app(shake_env, ONE_STEP, script=False, request="say")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("ctrl+n")
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        tree = app.screen.query_one("#picker")
        assert app.focused.id == "script-path"  # issue #23 item 4: the path box first, as its label says
        tree.focus()
        await wait_for(pilot, lambda: tree.cursor_node is not None and len(tree.root.children) > 0)
        for i, node in enumerate(tree.root.children):
            if str(node.label).endswith("hello.py"):
                tree.move_cursor(node)
        await pilot.press("enter")
        assert app.screen.query_one("#script-path").value.endswith("hello.py")
        assert app.focused is tree  # no jump: the next Tab goes to the request
        await pilot.press(*" bye")  # space opens a folder in a tree; the letters are the request's
        assert app.screen.query_one("#request-text").text == "saybye"


# -- 5. training from the app ----------------------------------------------------------------------
async def test_trainer_settings_are_checked_remembered_and_passed_to_the_run(shake_env, stand_in_trainer):
    accepted_row(shake_env)
    app, _ = make_app(shake_env, {}, script=False, train_command=stand_in_trainer)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f4", "c")
        await wait_for(pilot, on_screen(app, "TrainSettingsScreen"))
        app.screen.query_one("#field-lam").value = "-1"
        app.screen.query_one("#field-max_steps").value = "ten"
        await pilot.press("ctrl+r")
        assert "is not a whole number" in rendered(app.screen.query_one("#help-max_steps"))
        assert app.focused.id == "field-max_steps"
        app.screen.query_one("#field-max_steps").value = "10"
        await pilot.press("ctrl+r")
        # issue #23 item 8: next to the field, in the form's words (not the flag's)
        assert "“λ (odds-ratio weight)” must be >= 0" in rendered(app.screen.query_one("#help-lam"))
        app.screen.query_one("#field-lam").value = "0.5"
        app.screen.query_one("#field-lr").value = "1e-4"
        await pilot.press("ctrl+r")
        await wait_for(pilot, on_screen(app, "TrainerScreen"))
        assert "λ (odds-ratio weight) 0.5" in rendered(app.screen.query_one("#train-settings-summary"))
        await pilot.press("t")
        await wait_for(pilot, lambda: app.training is not None and (app.training.record.run_dir / "args.json").exists())
        args = __import__("json").loads((app.training.record.run_dir / "args.json").read_text())
        app.training.popen.kill()
    assert args[args.index("--lam") + 1] == "0.5" and args[args.index("--max-steps") + 1] == "10"
    assert args[args.index("--lr") + 1] == "0.0001"
    again, _ = make_app(shake_env, {}, script=False)
    async with again.run_test(size=(140, 45)) as pilot:
        await pilot.press("f4", "c")
        await wait_for(pilot, on_screen(again, "TrainSettingsScreen"))
        assert again.screen.query_one("#field-lam").value == "0.5"  # remembered


STAND_IN_SCOREBOARD = """
import sys
from pathlib import Path
from trainer.scoreboard import ContestantScore, Scoreboard

args = sys.argv[1:]
assert args[0] == "eval" and args[2] == "--scoreboard", args
run_dir = Path(args[1])
Scoreboard(run_dir.name, 4, 4, (ContestantScore("student", 4, 3, 4, 4, 2, 1, 0),
                                ContestantScore("teacher", 4, 1, 3, 2, 1, 0, 0)), (), "now").save(run_dir)
print("written")
"""


async def test_the_scoreboard_is_scored_from_the_trainer_screen_and_shown_there(shake_env):
    """`b` runs `shake eval RUN --scoreboard` in its own process and the screen shows the board it wrote;
    it is shown again whenever the screen opens on that run."""
    import sys

    run_dir = shake_env / "data" / "runs" / "run-scored"
    run_dir.mkdir(parents=True)
    (run_dir / "DONE").write_text("{}")
    stand_in = shake_env / "stand_in_eval.py"
    stand_in.write_text(STAND_IN_SCOREBOARD)
    app, _ = make_app(shake_env, {}, script=False)
    app.shake_command = [sys.executable, str(stand_in)]
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, on_screen(app, "TrainerScreen"))
        results = app.screen.query_one("#eval-results")
        assert "Scoreboard" not in rendered(results)
        await pilot.press("b")
        await wait_for(pilot, lambda: "pass 3/4 (75%)" in rendered(results), timeout=30)
        assert "teacher  pass 1/4 (25%)" in rendered(results) and "held-out steps: 4" in rendered(results)
    again, _ = make_app(shake_env, {}, script=False)
    async with again.run_test(size=(140, 45)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, lambda: "pass 3/4 (75%)" in rendered(again.screen.query_one("#eval-results")))


# -- 6. curating the dataset ------------------------------------------------------------------------
async def test_the_dataset_can_be_filtered_and_a_wrong_row_excluded_and_brought_back(shake_env):
    answers = {"planner": ["1. Add a goodbye line\n2. Print a count"],
               "worker": [worker_answer(A + "x = 1\n"), worker_answer(A), worker_answer(A + "print(3)\n")]}
    app, _ = make_app(shake_env, answers)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await give_feedback(pilot, app, "redo: no x")
        await pilot.press("enter")
        await wait_for(pilot, status_is(app, "review"))
        await give_feedback(pilot, app, "accept: good")
        await pilot.press("enter")
        await wait_for(pilot, lambda: status_is(app, "review")() and app.session_screen.session.step_index == 1)
        await accept(pilot, app)
        await pilot.press("f3")
        await wait_for(pilot, on_screen(app, "DatasetScreen"))
        screen = app.screen
        table = screen.query_one("#rows")
        assert [str(c.label) for c in table.columns.values()][3] == "agent"
        assert table.row_count == 2  # step 1's Redo row, step 2's row accepted on its first cycle
        await pilot.press("slash", *"kind:redo", "enter")
        assert table.row_count == 1 and table.get_row_at(0)[4] == "redo"
        assert "1 row of 2 match the filter" in rendered(screen.query_one("#dataset-counts"))
        await pilot.press("x")  # this row taught the wrong thing: out of training
        row_id = screen.current.row_id
        with DatasetStore(shake_env / "data", writable=False) as store:  # a reader beside the app's writer
            excluded = {r.row_id: r.excluded for r in store.rows()}
        assert excluded[row_id] is not None and excluded[row_id].reason == "excluded in the app"
        assert "excluded" in str(table.get_row_at(0)[6])
        await pilot.press("x")  # undone: nothing was deleted
        with DatasetStore(shake_env / "data", writable=False) as store:
            assert all(r.excluded is None for r in store.rows())
        await pilot.press("escape")
        assert table.row_count == 2
        await pilot.press("c")  # the chosen coloured by the teacher's token probabilities
        assert "teacher probability" in rendered(screen.query_one("#title-chosen"))


# -- 7. a second app on the same data -------------------------------------------------------------
def test_a_second_app_on_the_same_data_says_why_on_stderr_and_exits_2(shake_env):
    import subprocess
    import sys

    with DatasetStore(shake_env / "data"):
        out = subprocess.run([sys.executable, "-m", "tui.cli"], capture_output=True, text=True, timeout=60,
                             cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2
    assert out.stderr.strip().startswith("shake: ") and "in use by another shake process" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


async def test_read_only_commands_work_beside_the_running_app(shake_env):
    import subprocess
    import sys

    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        for command in (["data", "stats"], ["sessions"]):
            out = subprocess.run([sys.executable, "-m", "tui.cli", *command], capture_output=True, text=True,
                                 timeout=60, cwd=Path(__file__).resolve().parents[1])
            assert out.returncode == 0, out.stderr
            assert "in use by another shake process" not in out.stderr
        assert "review" in out.stdout


# -- 8. resuming --------------------------------------------------------------------------------
def unfinished_session(shake_env) -> str:
    return scripted_session(shake_env, accept=False)


async def test_start_up_mentions_unfinished_sessions_and_resuming_waits_for_the_user(shake_env):
    session_id = unfinished_session(shake_env)
    app, teacher = make_app(shake_env, {}, script=False)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.2)
        assert any("1 unfinished session: F5 lists them" in n for n in notes(app))
        assert "F5 lists 1 unfinished session" in app.session_screen.query_one("#banner").text
        await pilot.press("f5")
        await wait_for(pilot, on_screen(app, "SessionsScreen"))
        table = app.screen.query_one("#sessions-table")
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[0] == session_id and row[1] == "review" and row[2] == "step 1/1"
        await pilot.press("enter")
        await wait_for(pilot, lambda: session_of(app) is not None)
        await pilot.pause(0.5)
        assert teacher.calls == []  # nothing generated: the proposal was waiting, and still is
        assert not app.session_screen.busy
        assert "waits for your feedback" in app.session_screen.query_one("#banner").text
        assert app.session_screen.query_one("#diff").after == A


# -- 9. stale or unexplained displays ---------------------------------------------------------------
async def test_a_new_session_shows_planning_and_nothing_of_the_previous_one(shake_env):
    app, teacher = make_app(shake_env, {"planner": ["1. Add a goodbye line", "1. Print it twice"],
                                        "worker": [worker_answer(A), worker_answer('print("hello")\nprint(1)\n')]})
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        assert "proposal by a" in rendered(app.session_screen.query_one("#status"))
        teacher.delay_s = 0.2  # the next planner answers slowly
        await app.session_screen.start(shake_env / "hello.py", "print it twice, then say bye")  # planned
        await pilot.pause(0.1)
        assert "Planning" in app.session_screen.query_one("#banner").text
        assert "No session" not in screen_text(app)
        assert app.session_screen.query_one("#diff").after == ""  # not the previous session's proposal
        assert "proposal by" not in rendered(app.session_screen.query_one("#status"))
        teacher.delay_s = 0.0
        await wait_for(pilot, status_is(app, "review"))


async def test_plan_symbols_have_a_legend_and_counts_are_plural_only_when_they_should_be(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        legend = rendered(app.session_screen.query_one("#plan-legend"))
        for mark in ("▶ working", "? your review", "✓ accepted", "· to do", "! stalled"):
            assert mark in legend
        await accept(pilot, app)
        assert "dataset: 1 row " in rendered(app.session_screen.query_one("#status")) + " "
        await pilot.press("f3")
        await wait_for(pilot, on_screen(app, "DatasetScreen"))
        counts = rendered(app.screen.query_one("#dataset-counts"))
        assert counts.startswith("1 row in 1 session ·")


# -- 10. the keyboard -------------------------------------------------------------------------------
async def test_keys_reach_the_diff_after_a_proposal_and_tabs_switch_by_number(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        screen = app.session_screen
        diff = screen.query_one("#diff")
        assert app.focused is diff  # not the feedback box: n / s / d act at once
        await pilot.press("s")
        assert not diff.split
        await pilot.press("i", *"abc")
        assert screen.query_one("#feedback-input").value == "abc"
        await pilot.press("escape")  # leaves the box ...
        assert app.focused is diff
        await pilot.press("s")  # ... and the keys act again
        assert diff.split
        tabs = screen.query_one("#tabs")
        for key, tab in (("1", "tab-live"), ("3", "tab-log"), ("2", "tab-diff")):
            await pilot.press(key)
            assert tabs.active == tab


async def test_long_streamed_lines_wrap_instead_of_being_cut(shake_env):
    long_line = 'print("' + "x" * 300 + '")\n'
    app, _ = make_app(shake_env, {"planner": ["1. Print many x"], "worker": [worker_answer(long_line)]})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await pilot.press("1")
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert shown.count("x" * 60) >= 4  # the 300 x's continue on the next rows
        assert '")' in shown  # the end of the line is on screen


async def test_help_shows_keys_as_the_footer_does_and_names_are_not_confused(shake_env):
    app, _ = make_app(shake_env, {})
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f1")
        table = app.screen.query_one("#help-table")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        keys = {row[2]: row[1] for row in rows}
        assert keys["app.help"] == "f1 / ?"
        assert keys["session.search_log"] == "/"
        descriptions = {row[2]: row[3] for row in rows}
        assert descriptions["trainer.resume"] == "Continue" and descriptions["app.sessions"] == "Sessions"
        assert not any("question_mark" in row[1] or "slash" in row[1] for row in rows)


def footer_cut(app, width: int) -> list[str] | None:
    """The descriptions of the footer's keys that end past `width` or run under the palette key docked
    at its right; None while the footer is not laid out yet (a screen switch recomposes it, and on a
    loaded machine that takes more than a frame)."""
    footers = list(app.screen.query("Footer"))
    keys = list(footers[0].query("FooterKey")) if footers else []
    if not keys or any(k.region.width == 0 for k in keys):
        return None
    palette = [k.region.x for k in keys if k.has_class("-command-palette")]
    end = min([width, *palette])
    return [k.description for k in keys if not k.has_class("-command-palette") and k.region.right > end]


async def assert_footer_fits(pilot, app, width: int, what: str) -> None:
    """The footer, once laid out, fits; waits for the layout instead of a fixed pause."""
    try:
        await wait_for(pilot, lambda: footer_cut(app, width) == [])
    except AssertionError:
        raise AssertionError(f"{what}: {footer_cut(app, width)} cut off at {width} columns") from None


@pytest.mark.parametrize("width", [160, 120])
async def test_the_footer_fits_the_terminal(shake_env, width):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(width, 40)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        for key, mode in (("f2", "session"), ("f3", "dataset"), ("f4", "trainer"), ("f2", "session")):
            await pilot.press(key)
            await wait_for(pilot, lambda: app.current_mode == mode)
            await assert_footer_fits(pilot, app, width, key)
        # the label confirmation adds its own keys
        await give_feedback(pilot, app, "redo: no")
        await assert_footer_fits(pilot, app, width, "label")
