"""Driving the app in tests: a scripted app, waiting without sleeping blindly, reading the screen."""

from __future__ import annotations

from pathlib import Path

from engine.config import load_config
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher
from tui.app import ShakeApp

ORIGINAL = 'print("hello")\n'


def make_app(shake_env: Path, answers, *, delay_s=0.0, request="say goodbye, then count", script=True,
             b_answers=None, **kw):
    """The app on `hello.py` with scripted teachers `a` (answers) and `b`; no probing of this machine."""
    path = shake_env / "hello.py"
    path.write_text(ORIGINAL)
    config = load_config()
    teacher = ScriptedTeacher("a", answers, delay_s=delay_s)
    pool = TeacherPool(config, extra={"a": teacher, "b": ScriptedTeacher("b", b_answers or {}, delay_s=delay_s)})
    kw.setdefault("check_ollama", False)
    return ShakeApp(path if script else None, request, config=config, pool=pool, **kw), teacher


async def wait_for(pilot, predicate, timeout=20.0, what="the app did not get there in time"):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(what)


def session_of(app):
    return app.session_screen.session if app.session_screen else None


def status_is(app, status):
    return lambda: session_of(app) is not None and session_of(app).status == status and not app.session_screen.busy


async def give_feedback(pilot, app, text):
    app.session_screen.query_one("#feedback-input").focus()
    await pilot.press(*text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "label-confirm")


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    return "\n".join("".join(segment.text for segment in strip) for strip in app.screen._compositor.render_strips())


def rendered(widget) -> str:
    return str(widget.render())


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


def on_screen(app, name: str):
    """A predicate: the app shows the screen class `name`, composed and mounted."""
    return lambda: type(app.screen).__name__ == name and app.screen.is_mounted
