"""The app's new-session form in project mode: a bad project is one line on screen and writes nothing;
a good one reaches the session, whose runs see the project."""

from __future__ import annotations

import pytest

from app_helpers import make_app, notes, on_screen, status_is, session_of, wait_for
from engine.execution import sandbox
from helpers import worker_answer

pytestmark = pytest.mark.skipif(sandbox.probe() is not None, reason=f"no sandbox here: {sandbox.probe()}")

USES_SIBLING = "from greeting import WORD\nprint(WORD, open('name.txt').read().strip())\n"


async def test_the_form_checks_the_project_and_the_session_runs_in_it(shake_env, tmp_path):
    (shake_env / "greeting.py").write_text('WORD = "hello"\n')
    (shake_env / "name.txt").write_text("world\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    app, _ = make_app(shake_env, {"planner": ["1. Greet"], "worker": [worker_answer(USES_SIBLING)]}, request="")
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        app.screen.query_one("#request-text").load_text("greet by name")
        app.screen.query_one("#project-root").value = str(elsewhere)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("does not contain the script" in n for n in notes(app)))
        assert type(app.screen).__name__ == "NewSessionScreen" and session_of(app) is None
        assert not (shake_env / "data" / "sessions").exists() or not any((shake_env / "data" / "sessions").iterdir())
        app.screen.query_one("#project-root").value = ""
        app.screen.query_one("#run-command").value = "python nothere.py"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("names nothere.py, which is not in the project" in n for n in notes(app)))
        assert app.focused.id == "run-command"
        app.screen.query_one("#run-command").value = "python hello.py --loud"
        await pilot.press("ctrl+r")
        await wait_for(pilot, status_is(app, "review"))
        session = session_of(app)
        assert session.state.project.run == ("python", "hello.py", "--loud")
        assert session.state.project.root == str(shake_env.resolve())
        proposal = session.pending_proposal()
        assert proposal.run.ok and "hello world" in proposal.run.stdout
        assert proposal.run.command == "python hello.py --loud"
