"""One review loop (engine/session/driver.py): the same session played by `shake session`, by `drive`
with a reviewer of its own and by the app at the keyboard leaves the same rows and the same script.

Before the driver each caller wrote the loop itself, and they drifted; this test is what keeps them
one loop. The session: two steps, the first redone once, then accepted; the second accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from app_helpers import ORIGINAL, give_feedback, make_app, session_of, status_is, wait_for
from engine.agents.analyzer import explicit_label
from engine.config import load_config
from engine.session import Session
from engine.session.driver import Ending, Feedback, Pause, Skip, apply, drive
from engine.session.events import EventKind
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, rows_json, worker_answer
from tui.cli import main

REQUEST = "say goodbye, then count"
FIRST = 'print("hello")\nprint("bye?")\n'
FIXED = 'print("hello")\nprint("bye")\n'
COUNTED = 'print("hello")\nprint("bye")\nfor i in range(3):\n    print(i)\n'
ANSWERS = {"planner": ["1. Add a goodbye line\n2. Count to three"],
           "worker": [worker_answer(FIRST), worker_answer(FIXED), worker_answer(COUNTED)]}
FEEDBACK = ["redo: it should say bye, not bye?", "accept: good", "accept: fine"]

# what differs between two plays of one session and says nothing about the loop: the ids and the times
VOLATILE = {"row_id", "session_id", "created_at", "updated_at"}


def normalized(value):
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def use_data_dir(monkeypatch, shake_env: Path, name: str) -> Path:
    data = shake_env / name
    monkeypatch.setenv("SHAKE_DATA", str(data))
    return data


def played(data: Path) -> tuple[list[dict], str, str]:
    """The rows of the one session in `data`, normalized, its status and its final script."""
    with DatasetStore(data) as store:
        (sid,) = store.session_ids()
        state = store.load_state(sid)
        return normalized(rows_json(store, sid)), str(state.status), state.current_script


def scripted_pool(config):
    return TeacherPool(config, extra={"a": ScriptedTeacher("a", ANSWERS), "b": ScriptedTeacher("b")})


class Lines:
    """A reviewer that answers each proposal with the next line, labelled by its explicit prefix."""

    def __init__(self, lines):
        self.lines = list(lines)

    def more(self, session):
        return bool(self.lines)

    def review(self, session, proposal):
        return Feedback(explicit_label(self.lines.pop(0)))

    def stalled(self, session, error):
        return Pause(str(error))


def by_drive(shake_env, monkeypatch):
    data = use_data_dir(monkeypatch, shake_env, "data-drive")
    (shake_env / "hello.py").write_text(ORIGINAL)
    config = load_config()
    reviewer, events = Lines(FEEDBACK), []
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, scripted_pool(config), config, shake_env / "hello.py", REQUEST)
        outcome = drive(session, reviewer, events.append)
    assert outcome.ending == Ending.DONE
    steps = [e.data["step_index"] for e in events if e.kind == EventKind.STEP]
    assert steps == [0, 0, 1]  # the redone step is announced again before its second proposal
    return played(data)


def by_cli(shake_env, monkeypatch, capsys):
    import engine.cli

    data = use_data_dir(monkeypatch, shake_env, "data-cli")
    (shake_env / "hello.py").write_text(ORIGINAL)
    feedback = shake_env / "feedback.txt"
    feedback.write_text("\n".join(FEEDBACK) + "\n")
    monkeypatch.setattr(engine.cli, "TeacherPool", scripted_pool)
    rc = main(["session", str(shake_env / "hello.py"), "--request", REQUEST, "--feedback", str(feedback)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "== step 1/2: Add a goodbye line" in out and "== step 2/2: Count to three" in out
    return played(data)


async def by_app(shake_env, monkeypatch):
    data = use_data_dir(monkeypatch, shake_env, "data-app")
    app, teacher = make_app(shake_env, ANSWERS, request=REQUEST)

    def proposals():
        return sum(1 for agent, _ in teacher.calls if agent == "worker")

    async with app.run_test(size=(140, 45)) as pilot:
        for i, line in enumerate(FEEDBACK):
            await wait_for(pilot, lambda: proposals() == i + 1 and status_is(app, "review")(),
                           what=f"no proposal {i + 1} to review")
            await give_feedback(pilot, app, line)
            await pilot.press("enter")  # commit the label its prefix gave
        await wait_for(pilot, status_is(app, "done"), what="the app did not finish the session")
    return played(data)


async def test_the_cli_the_driver_and_the_app_play_one_session_alike(shake_env, monkeypatch, capsys):
    driven = by_drive(shake_env, monkeypatch)
    assert driven[1] == "done" and driven[2] == COUNTED
    first, second = driven[0]  # step 1: the redone proposal rejected for the fixed one; step 2: accepted as it came
    assert first["rejected"]["script"] == FIRST and first["chosen"]["script"] == FIXED
    assert second["rejected"] is None and second["chosen"]["script"] == COUNTED
    assert by_cli(shake_env, monkeypatch, capsys) == driven
    assert await by_app(shake_env, monkeypatch) == driven


def test_a_pause_changes_nothing_and_a_skip_goes_on(shake_env):
    (shake_env / "hello.py").write_text(ORIGINAL)
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, scripted_pool(config), config, shake_env / "hello.py", REQUEST)
        outcome = drive(session, Lines([]))  # a reviewer with nothing to say pauses before the first proposal
        assert outcome.ending == Ending.PAUSED and session.step_index == 0
        before = rows_json(store, session.id)
        session.propose()
        assert apply(session, Pause("later")) is False and session.step_index == 0
        assert apply(session, Skip()) is True and session.step_index == 1
        assert len(rows_json(store, session.id)) >= len(before)
    with pytest.raises(TypeError, match="not a review decision"):
        apply(session, "accept")  # type: ignore[arg-type]
