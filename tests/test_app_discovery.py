"""Issue #17 in the app: the first start offers the models found on this machine, one key adds the
chosen one as the worker's first teacher, the next session uses it; the new-session dialog finds them
too. Against the loopback Ollama stand-in serving two models."""

from __future__ import annotations

import pytest

from app_helpers import make_app, notes, on_screen, status_is, wait_for
from engine.config import load_config
from helpers import worker_answer
from ollama_layout import quiet_machine  # noqa: F401  (fixture)
from servers import FakeOllama, OllamaModel

A = 'print("hello")\nprint("bye")\n'
LLAMA = OllamaModel("llama3.2:3b", family="llama", parameter_size="3.2B", quantization="Q4_0", context_length=131072)


@pytest.fixture
def ollama(quiet_machine, monkeypatch):  # noqa: F811
    """The stand-in Ollama with two models pulled, where the app looks for Ollama."""
    with FakeOllama(model="qwen2.5-coder:7b", more=[LLAMA], reply=[worker_answer(A)]) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


def hint_of(app):
    return app.session_screen.query_one("#discovery-hint")


async def test_first_start_offers_the_found_models_and_one_key_makes_one_the_worker_first(shake_env, ollama):
    app, teacher = make_app(shake_env, {"planner": ["1. Add a goodbye line"]}, script=False, check_ollama=True)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: hint_of(app).display and hint_of(app).addable)
        hint = hint_of(app)
        assert [m.model for m in hint.addable] == ["qwen2.5-coder:7b", "llama3.2:3b"]
        shown = str(hint.query_one("#discovery-teachers").render())
        assert "The worker's teachers: a" in shown and "b" in shown
        assert "a or Enter adds it" in str(hint.query_one("#discovery-keys").render())
        assert app.focused.id == "discovery-models"
        await pilot.press("down")  # the second model
        assert hint.chosen.model == "llama3.2:3b"
        await pilot.press("a")
        await wait_for(pilot, lambda: any("Added 'llama3.2-3b'" in n for n in notes(app)))
        config = load_config()  # what is on disk now
        assert config.agents["worker"] == ["llama3.2-3b", "a", "b"]
        added = config.teachers["llama3.2-3b"]
        assert (added.backend, added.model, added.host, added.n_ctx) == ("ollama", "llama3.2:3b", ollama.url, 8192)
        assert "[configured as 'llama3.2-3b']" in "\n".join(str(o.prompt) for o in hint.query_one("#discovery-models").options)
        # the next session's worker is the added model
        await app.session_screen.start(shake_env / "hello.py", "say bye")
        await wait_for(pilot, status_is(app, "review"), timeout=30)
        proposal = app.session_screen.session.pending_proposal()
        assert proposal.teacher["name"] == "llama3.2-3b" and proposal.script == A
        chats = [r for r in ollama.requests if r["path"] == "/api/chat"]
        assert chats and all(r["model"] == "llama3.2:3b" for r in chats)
        assert not any(agent == "worker" for agent, _ in teacher.calls)


async def test_the_hint_stays_until_dismissed(shake_env, ollama):
    for _ in range(2):  # shown at every start ...
        app, _ = make_app(shake_env, {}, script=False, check_ollama=True)
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_for(pilot, lambda: hint_of(app).display)
    app, _ = make_app(shake_env, {}, script=False, check_ollama=True)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: hint_of(app).display and app.focused is not None)
        await pilot.press("h")  # issue #23 item 5: h (x is the session screen's Copy script)
        await wait_for(pilot, lambda: not hint_of(app).display)
    app, _ = make_app(shake_env, {}, script=False, check_ollama=True)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.discovery is not None)
        await pilot.pause(0.2)
        assert not hint_of(app).display  # dismissed for good ...
        await pilot.press("f6")  # ... until asked for
        await wait_for(pilot, lambda: hint_of(app).display)


async def test_the_new_session_dialog_finds_local_models_and_ticking_one_adds_it(shake_env, ollama):
    app, _ = make_app(shake_env, {"planner": ["1. Add a goodbye line"]}, request="")
    app.ui_state.set("discovery_hint", "dismissed")
    app.check_ollama = True
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, on_screen(app, "NewSessionScreen"))
        picker = app.screen.query_one("#teachers")
        await wait_for(pilot, lambda: any(c.found for c in picker.choices))
        lines = [str(o.prompt) for o in app.screen.query_one("#teacher-list").options]
        assert any(line.startswith("[ ] qwen2.5-coder-7b") and "found on this machine" in line for line in lines)
        found_at = next(i for i, c in enumerate(picker.choices) if c.name == "qwen2.5-coder-7b")
        listing = app.screen.query_one("#teacher-list")
        listing.focus()
        listing.highlighted = found_at
        await pilot.press("space")
        for _ in range(found_at):
            await pilot.press("shift+up")  # first in the worker's order
        assert [c.name for c in picker.ticked][0] == "qwen2.5-coder-7b"
        app.screen.query_one("#request-text").text = "say bye"
        await pilot.press("ctrl+r")
        await wait_for(pilot, status_is(app, "review"), timeout=30)
        assert app.session_screen.session.pending_proposal().teacher["name"] == "qwen2.5-coder-7b"
    assert "qwen2.5-coder-7b" in load_config().teachers
