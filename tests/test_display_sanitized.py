"""Model and script text reaches the terminal without its control characters: the headless session's
event printing, and the app's live pane, diff pane, run log and plan. (Textual's `Log` drops only
U+0000..U+0014 itself: ESC sequences such as OSC 52 went through.)"""

from __future__ import annotations

from textual.app import App
from textual_diff_view import DiffView

from engine.cli import print_event
from engine.execution.sanitize import is_safe
from engine.session import SessionEvent
from tui.widgets.diff import DiffPane
from tui.widgets.live import LivePane
from tui.session_view import StepView
from tui.widgets.plan import PlanView
from tui.widgets.run_log import RunLog
from tui.widgets.wrapped_log import WrappedLog

HOSTILE = "ok\x1b]52;c;cHduZWQ=\x07 \x1b]0;title\x07 \x1b[2J\x1b[?1049l \x9b1m end\r"


def test_the_headless_session_prints_events_sanitized(capsys):
    for kind in ("worker", "run", "proposal", "note"):
        print_event(SessionEvent(kind, HOSTILE, {"teacher": "t\x1b[31m", "cycle": 1}))
    out = capsys.readouterr().out
    assert is_safe(out) and out.count("␛]52;c;cHduZWQ=␇") == 4


class Panes(App):
    def compose(self):
        yield LivePane()
        yield DiffPane()
        yield RunLog()
        yield PlanView()


async def test_the_app_panes_show_model_text_sanitized():
    app = Panes()
    async with app.run_test() as pilot:
        live = app.query_one(LivePane)
        live.set_instruction(HOSTILE, 1, "teacher")
        live.stream("worker", HOSTILE)
        live.note(HOSTILE)
        live.flush()
        await pilot.pause()
        assert all(is_safe(line) for line in live.query_one(WrappedLog).lines) and "␛]52" in live.text
        instruction = live.query_one("#live-instruction").render()
        assert is_safe(str(instruction))

        run_log = app.query_one(RunLog)
        run_log.show_text(HOSTILE + "\nsecond line")
        await pilot.pause()
        assert all(is_safe(line) for line in run_log.lines) and "␛[?1049l" in run_log.lines[0]

        diff = app.query_one(DiffPane)
        await diff.show("print('a')\n", f"print('{HOSTILE}')\n")  # an ESC in the script itself
        await pilot.pause()
        view = diff.query_one(DiffView)
        assert is_safe(view.code_original) and is_safe(view.code_modified) and "␛" in view.code_modified

        plan = app.query_one(PlanView)
        plan.show_steps((StepView(1, HOSTILE, "pending", 0),), 0)
        assert is_safe(str(plan.get_option_at_index(0).prompt))
