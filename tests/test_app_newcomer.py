"""Issue #23, "a newcomer's first hour", in the app: one Pilot test (or more) per numbered item.

Each drives the app as a user would (keys) and checks what the user sees and what lands on disk;
each failed on the app as it was when the issue was filed.
"""

from __future__ import annotations

import pytest

from app_helpers import (give_feedback, make_app, notes, on_screen, rendered, screen_text, session_of, status_is,
                         wait_for)
from dataset_factory import make_dataset
from engine.store import DatasetStore
from helpers import worker_answer
from ollama_layout import quiet_machine  # noqa: F401  (fixture)
from test_app_edit import editor  # noqa: F401  (fixture: $EDITOR saves a working script)
from test_app_finish import accept, accepted_row

A = 'print("hello")\nprint("bye")\n'
ONE_STEP = {"planner": ["1. Add a goodbye line"], "worker": [worker_answer(A)]}


# -- 1. a fresh machine without bubblewrap ----------------------------------------------------------
@pytest.fixture
def no_bubblewrap(tmp_path, monkeypatch):
    """A fresh machine: no bwrap on PATH (the sandbox probe looks again)."""
    from engine.execution import sandbox

    empty = tmp_path / "bin-without-bwrap"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    sandbox.probe.cache_clear()
    yield
    sandbox.probe.cache_clear()


async def test_1_the_first_screen_says_what_to_install_where_scripts_cannot_run(shake_env, no_bubblewrap):
    app, _ = make_app(shake_env, {}, script=False)
    async with app.run_test(size=(140, 45)) as pilot:
        banner = app.session_screen.query_one("#banner")
        await wait_for(pilot, lambda: "Scripts cannot run yet" in banner.text)
        assert "sudo apt-get install bubblewrap" in banner.text
        assert "ctrl+n starts one" in banner.text  # the usual first words stay


# -- 3. the dataset's x acts on the row under the cursor -------------------------------------------
def dataset_app(shake_env):
    """An app over a made dataset of several sessions, no session of its own."""
    make_dataset(shake_env / "data", shake_env)
    return make_app(shake_env, {}, script=False)[0]


async def open_dataset(pilot, app) -> None:
    await pilot.press("f3")
    await wait_for(pilot, on_screen(app, "DatasetScreen"))


async def test_3_x_excludes_the_row_under_the_cursor_and_x_again_brings_that_row_back(shake_env):
    app = dataset_app(shake_env)
    async with app.run_test(size=(160, 45)) as pilot:
        await open_dataset(pilot, app)
        screen = app.screen
        table = screen.query_one("#rows")
        assert len({r.session_id for r in screen.shown}) >= 2
        await pilot.press("down")  # a row of the first session: excluding it changes that session
        await wait_for(pilot, lambda: screen.current is screen.shown[1])
        target = screen.current.row_id
        for turn in range(4):  # out, back in, out, back in: always the same row
            await pilot.press("x")
            assert screen.current.row_id == target, f"turn {turn}: the cursor left the row"
            assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == target
            with DatasetStore(shake_env / "data", writable=False) as store:
                excluded = {r.row_id for r in store.rows() if r.excluded}
            assert excluded == ({target} if turn % 2 == 0 else set())


# -- 5. a key means one thing on a screen; the first-start hint can be hidden ----------------------
def binding_keys(node) -> list[tuple[str, str]]:
    """(key, id) of the bindings with an id that `node`'s class (and its bases) declares."""
    from textual.binding import Binding

    out = []
    for cls in type(node).__mro__:
        for b in cls.__dict__.get("BINDINGS", ()):
            if isinstance(b, Binding) and b.id:
                out += [(key.strip(), b.id) for key in b.key.split(",")]
    return out


# Esc is the one key every layer keeps on purpose: it always leaves the innermost thing (the search
# box, the label, the text box, a dialog).
SHARED = {"escape"}


def clashes(app, screen) -> list[str]:
    """Keys bound to two ids at once: for every widget the focus can be on, along its chain of
    ancestors, the screen and the app (the chain Textual looks up a key in)."""
    found = set()
    for widget in [screen, *screen.walk_children()]:
        seen: dict[str, str] = {}
        node = widget
        while node is not None:  # the widget, its ancestors, the screen, then the app (the screen's parent)
            for key, binding_id in binding_keys(node):
                if key not in SHARED and seen.setdefault(key, binding_id) != binding_id:
                    found.add(f"{type(screen).__name__}: {key} is {seen[key]} and {binding_id}")
            node = node.parent
    return sorted(found)


async def test_5_no_key_is_bound_twice_on_any_screen(shake_env):
    make_dataset(shake_env / "data", shake_env)
    app, _ = make_app(shake_env, ONE_STEP)
    problems = []
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        problems += clashes(app, app.screen)
        for key, name in (("f3", "DatasetScreen"), ("f4", "TrainerScreen")):
            await pilot.press(key)
            await wait_for(pilot, on_screen(app, name))
            problems += clashes(app, app.screen)
        await pilot.press("c")
        await wait_for(pilot, on_screen(app, "TrainSettingsScreen"))
        problems += clashes(app, app.screen)
        await pilot.press("escape", "f2", "ctrl+n")
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        problems += clashes(app, app.screen)
        await pilot.press("escape", "f5")
        await wait_for(pilot, on_screen(app, "SessionsScreen"))
        problems += clashes(app, app.screen)
        await pilot.press("escape", "f1")
        await wait_for(pilot, on_screen(app, "HelpScreen"))
        problems += clashes(app, app.screen)
    assert problems == []


def test_5_the_dialogs_not_opened_above_bind_no_key_twice():
    from tui.screens.ask import AskTextScreen, ConfirmDiffScreen
    from tui.screens.quit import QuitScreen
    from tui.screens.save import SaveScreen
    from tui.app import ShakeApp

    app_keys = dict(binding_keys(ShakeApp.__new__(ShakeApp)))
    for screen in (AskTextScreen, ConfirmDiffScreen, QuitScreen, SaveScreen):
        for key, binding_id in binding_keys(screen.__new__(screen)):
            assert key in SHARED or app_keys.get(key, binding_id) == binding_id, (screen, key)


@pytest.fixture
def ollama(quiet_machine, monkeypatch):  # noqa: F811
    """The stand-in Ollama with a model pulled, where the app looks for Ollama."""
    from servers import FakeOllama

    with FakeOllama(model="qwen2.5-coder:7b", reply=[worker_answer(A)]) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


async def test_5_h_hides_the_first_start_hint_wherever_the_focus_is(shake_env, ollama):
    app, _ = make_app(shake_env, {}, script=False, check_ollama=True)
    async with app.run_test(size=(140, 45)) as pilot:
        hint = app.session_screen.query_one("#discovery-hint")
        await wait_for(pilot, lambda: hint.display and hint.addable)
        assert "h hides this hint" in rendered(hint.query_one("#discovery-keys"))
        app.session_screen.query_one("#diff").focus()  # not on the hint: its keys must still work
        await pilot.press("h")
        await wait_for(pilot, lambda: not hint.display)
        assert app.ui_state.get("discovery_hint") == "dismissed"


# -- 11. one definition of "done" -----------------------------------------------------------------
async def test_11_a_skipped_step_is_not_done_in_the_app_nor_in_shake_sessions(shake_env, capsys):
    from tui.cli import main

    answers = {"planner": ["1. Add a goodbye line\n2. Print a count"], "worker": [worker_answer(A)] * 2}
    app, _ = make_app(shake_env, answers)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        app.session_screen.query_one("#diff").focus()
        await pilot.press("S", "S")  # skip step 1 (the second press confirms)
        await wait_for(pilot, lambda: status_is(app, "review")() and session_of(app).state.step_index == 1)
        await accept(pilot, app)
        await wait_for(pilot, status_is(app, "done"))
        assert "done 1/2, 1 skipped" in rendered(app.session_screen.query_one("#status"))
        assert "Every step is accepted" not in app.session_screen.query_one("#banner").text
    capsys.readouterr()
    assert main(["sessions"]) == 0
    assert "1/2 steps (1 skipped)" in capsys.readouterr().out


# -- 7. the stall banner goes once the stall is resolved --------------------------------------------
async def test_7_the_stall_banner_goes_when_the_users_script_resolves_the_stall(shake_env, editor):
    failing = [worker_answer("raise SystemExit(3)\n")] * 2
    plan = "1. Add a goodbye line\n2. Print a count"
    # slow teachers: the next step's lead takes a while, and the banner must not say "stalled" meanwhile
    app, _ = make_app(shake_env, {"planner": [plan], "worker": failing + [worker_answer(A + "print(3)\n")]},
                      b_answers={"worker": failing}, delay_s=0.1)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "stalled"), timeout=120)
        screen = app.session_screen
        assert "stalled" in screen.query_one("#banner").text
        await pilot.press("e")
        await wait_for(pilot, on_screen(app, "ConfirmDiffScreen"))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: session_of(app).state.step_index > 0)  # step 1 is accepted
        assert screen.busy  # the lead works on step 2 ...
        assert "stalled" not in screen.query_one("#banner").text  # ... under no stale stall banner
        await wait_for(pilot, status_is(app, "review"), timeout=120)
        assert "stalled" not in screen.query_one("#banner").text
        assert "stalled" not in rendered(screen.query_one("#status"))


# -- 9. the feedback stays on screen while its label is chosen -------------------------------------
async def test_9_the_feedback_is_shown_beside_the_label_it_gets(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await give_feedback(pilot, app, "redo: [b]say bye[/b] louder")
        shown = rendered(app.session_screen.query_one("#label-confirm"))
        assert "redo: [b]say bye[/b] louder" in shown and "Label: Redo" in shown  # the words as typed, not markup
        await pilot.press("m")
        shown = rendered(app.session_screen.query_one("#label-confirm"))
        assert "redo: [b]say bye[/b] louder" in shown and "Further edit (your choice)" in shown


# -- 4. the new-session dialog: focus where the label says, no key lost or misread ------------------
def burst(widget, text: str) -> None:
    """Keys that all reach `widget` before the focus can follow the first one (a quick typist, a paste
    the terminal does not bracket)."""
    from textual import events

    for char in text:
        widget.post_message(events.Key("space" if char == " " else char, char))


async def test_4_the_dialog_opens_on_the_script_path_and_a_burst_keeps_its_spaces_and_the_ticks(shake_env,
                                                                                                monkeypatch):
    monkeypatch.chdir(shake_env)
    app, _ = make_app(shake_env, ONE_STEP, script=False, request="")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("ctrl+n")
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        await pilot.pause(0.1)
        assert app.focused.id == "script-path"  # "Script (type a path, or pick one below)"
        await pilot.press(*"hello.py")
        assert app.screen.query_one("#script-path").value == "hello.py"
        request = app.screen.query_one("#request-text")
        tree = app.screen.query_one("#picker")
        tree.focus()
        await pilot.pause(0.1)
        burst(tree, "Add a function ")
        await wait_for(pilot, lambda: request.text == "Add a function ", what=f"the request is {request.text!r}")
        listing = app.screen.query_one("#teacher-list")
        listing.focus()
        await pilot.pause(0.1)
        burst(listing, "and a test")  # typed on: its spaces belong to the text, not to the ticks
        await wait_for(pilot, lambda: request.text == "Add a function and a test",
                       what=f"the request is {request.text!r}")
        assert [c.name for c in app.screen.query_one("#teachers").ticked] == ["a", "b"]
        listing.focus()
        await pilot.pause(0.1)
        await pilot.press("space")  # the first key of a visit: space is the list's own (it unticks `a`)
        assert [c.name for c in app.screen.query_one("#teachers").ticked] == ["b"]


# -- 14. the palette finds every mode's actions; an empty resume list says what to do ------------
def footer_line(app) -> str:
    return screen_text(app).splitlines()[-1]


@pytest.mark.parametrize("width", [120, 160])
async def test_14_the_footer_shows_the_diff_keys_on_the_diff_and_the_log_keys_on_the_log(shake_env, width):
    from test_app_finish import assert_footer_fits

    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(width, 40)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "diff")
        await wait_for(pilot, lambda: all(w in footer_line(app) for w in ("Split", "Next", "Prev", "Copy diff")))
        await assert_footer_fits(pilot, app, width, "the diff's keys")
        assert all(w in footer_line(app) for w in ("Feedback", "Dataset", "Trainer", "Sessions", "Help", "Quit"))
        assert "Session " not in footer_line(app) and "Cancel" not in footer_line(app)  # here, nothing to stop
        await pilot.press("3")
        app.session_screen.query_one("#run-log").focus()
        await wait_for(pilot, lambda: "Follow" in footer_line(app) and "Search" in footer_line(app))
        assert "Next" not in footer_line(app)
        await assert_footer_fits(pilot, app, width, "the log's keys")
        await pilot.press("slash")  # the search box: Esc closes it, and the footer says so
        await wait_for(pilot, lambda: "Cancel" in footer_line(app))
        await pilot.press("escape", "n")  # the diff keys still work from every tab
        assert app.session_screen.query_one("#tabs").active == "tab-diff"


async def test_14_the_palette_finds_the_trainers_train_from_the_session_screen(shake_env):
    app, _ = make_app(shake_env, {}, script=False)
    async with app.run_test(size=(140, 45)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Train (t, trainer)" in titles and "Exclude (x, dataset)" in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"train (t")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, on_screen(app, "TrainerScreen"))
        await wait_for(pilot, lambda: any("no accepted rows yet" in n for n in notes(app)))  # Train ran there


async def test_14_an_empty_resume_list_says_what_to_do(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        await accept(pilot, app)
        await wait_for(pilot, status_is(app, "done"))
        await pilot.press("f5")
        await wait_for(pilot, on_screen(app, "SessionsScreen"))
        empty = app.screen.query_one("#sessions-empty")
        assert empty.display and "a shows the 1 finished one" in rendered(empty)
        await pilot.press("a")
        assert not empty.display


# -- 8. the trainer settings' problem is said next to its field, as it is typed, in its words ------
async def test_8_a_wrong_setting_is_said_next_to_its_field_while_typing(shake_env):
    app, _ = make_app(shake_env, {}, script=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("f4", "c")
        await wait_for(pilot, on_screen(app, "TrainSettingsScreen"))
        app.screen.query_one("#field-max_steps").focus()
        await pilot.press("minus", "1")  # no ctrl+r: said as it is typed
        help_line = app.screen.query_one("#help-max_steps")
        await wait_for(pilot, lambda: "must be >= 0" in rendered(help_line))
        assert "“steps (0: from epochs)” must be >= 0" in rendered(help_line)
        assert "--" not in rendered(help_line)  # the form's labels, not the trainer's flags
        assert help_line.has_class("error-text")
        await pilot.press("backspace", "backspace", "5")
        await wait_for(pilot, lambda: not help_line.has_class("error-text"))
        assert "must be" not in rendered(help_line)


# -- 13. before a run's first step, the trainer screen says what the run is doing --------------------
PHASED_TRAINER = '''
import pathlib, sys, time
sys.path.insert(0, {root!r})
from engine.student.runs import RunDir
args = sys.argv[1:]
run = pathlib.Path(args[args.index("--run-dir") + 1]); stop = pathlib.Path(args[args.index("--stop-file") + 1])
run.mkdir(parents=True, exist_ok=True)
(run / "config.json").write_text("{{}}")
RunDir(run).set_phase("loading the student model")
while not stop.exists():
    time.sleep(0.05)
'''


async def test_13_before_the_first_step_the_trainer_screen_shows_the_runs_phase(shake_env):
    import sys
    from pathlib import Path


    accepted_row(shake_env)
    trainer = shake_env / "phased_trainer.py"
    trainer.write_text(PHASED_TRAINER.format(root=str(Path(__file__).resolve().parents[1])))
    app, _ = make_app(shake_env, {}, script=False, train_command=[sys.executable, str(trainer)])
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("f4", "t")
        await wait_for(pilot, lambda: app.training is not None)
        try:
            await wait_for(pilot, lambda: "loading the student model" in rendered(app.screen.query_one("#speed")))
        finally:
            app.training.popen.kill()



# -- 15. 80x24: the diff gets the room, nothing is cut, toasts leave the feedback box free -----------
async def test_15_at_80x24_the_plan_narrows_the_status_bar_wraps_and_toasts_stay_off_the_feedback(shake_env):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        screen = app.session_screen
        assert screen.query_one("#sidebar").size.width <= 24  # ~35 columns left 3 diff lines under the hint
        status = screen.query_one("#status")
        await wait_for(pilot, lambda: status.size.height == 2)  # one line cut the step's attempts off
        await pilot.pause(0.2)
        assert footer_line(app).endswith("^p palette ")  # was "^p palettea": a key under it
        app.notify("a toast")
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) > 0)
        await pilot.pause(0.2)
        toast = app.screen.query("Toast").last()
        feedback = screen.query_one("#feedback").region
        assert not toast.region.overlaps(feedback) and not toast.region.overlaps(status.region)


async def test_15_at_80x24_the_dataset_shows_what_x_changed_and_the_new_session_labels_stay_in_their_column(shake_env):
    app = dataset_app(shake_env)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dataset(pilot, app)
        await pilot.press("x")
        screen = app.screen
        await wait_for(pilot, lambda: screen.current is not None and screen.current.excluded)
        await pilot.pause(0.2)
        line = next(line for line in screen_text(app).splitlines() if screen.current.session_id in line
                    and "excluded" in line)  # the training column was cut at 80 columns ("tra")
        assert "excluded" in line
        assert any(" training" in line for line in screen_text(app).splitlines())
        await pilot.press("ctrl+n")
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        await pilot.pause(0.2)
        right = app.screen.query_one("#request-column").region.x
        labels = list(app.screen.query("#picker-column > Label"))
        assert labels and all(label.region.right <= right for label in labels)  # ran into "Change request"
        assert "pick one below" in screen_text(app)  # wrapped, not cut


async def test_15_the_edit_dialog_names_the_script_and_what_the_edit_replaces(shake_env, editor):
    app, _ = make_app(shake_env, ONE_STEP)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        app.session_screen.query_one("#diff").focus()
        await pilot.press("e")
        await wait_for(pilot, on_screen(app, "ConfirmDiffScreen"))
        assert app.screen.names == ("proposal: hello.py", "your edit: hello.py")
        assert "your edit: hello.py" in screen_text(app) and "your edit/script.py" not in screen_text(app)


# -- 10. a script that does not compile: the run log says nothing ran, and why ----------------------
async def test_10_the_run_log_of_a_script_that_does_not_compile_says_so_and_shows_the_error(shake_env):
    broken = [worker_answer("def f(:\n")] * 2
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line"], "worker": broken}, b_answers={"worker": broken})
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "stalled"))
        await pilot.press("3")
        lines = app.session_screen.query_one("#run-log").lines
        assert lines[0] == "$ python script.py   # did not compile: nothing ran", lines
        assert any("SyntaxError" in line for line in lines)
        assert not any("exit code 1, 0.00 s" in line for line in lines)


# -- 6. a step reworded while its proposal waits: the proposal answered the old words -----------------
async def test_6_rewording_the_step_under_review_drops_its_proposal_and_says_so(shake_env):
    B = 'print("hello")\nprint("goodbye!")\n'
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line"], "worker": [worker_answer(A), worker_answer(B)]})
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, status_is(app, "review"))
        screen = app.session_screen
        await pilot.press("E")
        await wait_for(pilot, on_screen(app, "AskTextScreen"))
        app.screen.query_one("#ask-input").value = "Say goodbye loudly"
        await pilot.press("enter")
        await wait_for(pilot, lambda: status_is(app, "working")() and not screen.busy)
        banner = rendered(screen.query_one("#banner"))
        assert "new prompt" in banner and "dropped" in banner, banner
        assert "No proposal yet" in rendered(screen.query_one("#diff").query_one(".placeholder"))
        await pilot.press("ctrl+g")
        await wait_for(pilot, status_is(app, "review"))
        assert session_of(app).pending_proposal().step == "Say goodbye loudly"


# -- 15. the one-step loss chart: whole steps from 0, the loss's own range from 0 ---------------------
async def test_15_the_one_step_loss_chart_has_whole_steps_and_a_loss_axis_from_zero(shake_env):
    import re

    from textual_plotext import PlotextPlot

    app, _ = make_app(shake_env, {}, script=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await wait_for(pilot, on_screen(app, "TrainerScreen"))
        plot = app.screen.query_one(PlotextPlot)
        app.screen.draw([{"step": 1, "total_steps": 1, "loss": 0.8, "kd": 0.5}])
        plot.plt.plotsize(plot.size.width, plot.size.height)
        chart = re.sub(r"\x1b\[[0-9;]*m", "", plot.plt.build())
        x_labels = chart.rstrip().splitlines()[-1].split()
        assert x_labels == ["0", "1"], x_labels  # plotext's own axis ran 0.50-1.50 around the one step
        y_ticks = [float(m) for m in re.findall(r"^\s*(\d+\.\d+)┤", chart, re.M)]
        assert min(y_ticks) == 0.0 and 0.8 <= max(y_ticks) < 1.0, y_ticks  # the loss in its own range
