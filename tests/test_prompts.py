"""Prompts in one place: versions by hash, saved versions, [prompts] pins, `shake prompts`, and the session using them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.agents.shapes import SHAPES
from engine.config import PROMPT_AGENTS, load_config, parse_config
from engine.errors import ConfigError
from engine.prompts import DEFAULT_BOOK, Demo, PromptBook, builtin_prompt, load_prompt_book
from engine.prompts import builtin
from engine.prompts.saved import list_prompts, load_prompt, save_prompt, unusable_prompts
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer
from tui.cli import main


def test_every_agent_has_one_prompt_and_one_shape():
    assert set(builtin.INSTRUCTIONS) == set(PROMPT_AGENTS) == set(SHAPES)
    for agent in PROMPT_AGENTS:
        prompt = builtin_prompt(agent)
        assert prompt.version.startswith(agent + "-") and len(prompt.version) == len(agent) + 13
        # the answer format comes from the shape, in the form the teacher answers in
        assert prompt.system("off").endswith(prompt.shape.text_format)
        assert prompt.system("json").endswith(prompt.shape.json_format)


def test_the_version_changes_with_instructions_demos_and_shape_only():
    base = builtin_prompt("worker")
    assert base.version == builtin_prompt("worker").version  # stable
    demo = Demo("Instruction: x\n\nScript:\n```python\nprint(1)\n```", {"reasoning": "r", "script": "print(2)\n"})
    versions = {base.version, base.with_demos([demo]).version,
                dataclasses.replace(base, instructions=base.instructions + " Be brief.").version,
                dataclasses.replace(base, shape=dataclasses.replace(base.shape, version=base.shape.version + 1)).version}
    assert len(versions) == 4


def test_demos_are_rendered_as_turns_in_the_teachers_form():
    demo = Demo("Instruction: x", {"reasoning": "because", "script": "print(2)\n"})
    prompt = builtin_prompt("worker").with_demos([demo])
    text = prompt.messages("the call", "off")
    assert [m["role"] for m in text] == ["system", "user", "assistant", "user"]
    assert text[2]["content"] == "```python\nprint(2)\n```\nbecause"  # worker@2: the script, then what changed
    as_json = json.loads(prompt.messages("the call", "json")[2]["content"])
    assert as_json == {"reasoning": "because", "script": "print(2)\n"}


def test_saved_versions_round_trip_and_refuse_edits(tmp_path):
    prompt = builtin_prompt("lead").with_demos([Demo("u", {"reasoning": "r", "instruction": "i"})])
    path = save_prompt(tmp_path, prompt, created_at="2026-01-01T00:00:00Z", note={"summary": "test"})
    assert path.name == f"{prompt.version}.json"
    loaded = load_prompt(tmp_path, prompt.version)
    assert loaded.prompt == dataclasses.replace(prompt, origin="saved") and loaded.note == {"summary": "test"}
    assert [s.version for s in list_prompts(tmp_path)] == [prompt.version]
    body = json.loads(path.read_text())
    body["instructions"] += " (edited by hand)"
    path.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="does not hash to its name"):
        load_prompt(tmp_path, prompt.version)
    assert list_prompts(tmp_path) == [] and "does not hash" in unusable_prompts(tmp_path)[0][1]
    with pytest.raises(ConfigError, match="is not in"):
        load_prompt(tmp_path, "lead-000000000000")


def test_a_version_saved_for_another_shape_is_refused(tmp_path):
    prompt = builtin_prompt("worker")
    path = save_prompt(tmp_path, prompt, created_at="x")
    body = json.loads(path.read_text())
    body["shape"] = "worker@0"
    path.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="saved for worker@0"):
        load_prompt(tmp_path, prompt.version)


def test_prompts_table_takes_version_names_only(tmp_path):
    assert parse_config('[prompts]\nworker = "worker-0123456789ab"\n', tmp_path / "c.toml").prompts.worker
    for bad in ('worker = "be nice"', 'worker = "lead-0123456789ab"', 'coder = ""'):
        with pytest.raises(ConfigError, match=r"\[prompts\]"):
            parse_config(f"[prompts]\n{bad}\n", tmp_path / "c.toml")


def test_constrain_is_checked_against_the_backend(tmp_path):
    config = parse_config('[teachers.q]\nbackend = "ollama"\nmodel = "m"\n', tmp_path / "c.toml")
    assert config.teachers["q"].answer_form == "json"
    assert parse_config("", tmp_path / "c.toml").teachers["smollm2"].answer_form == "grammar"
    with pytest.raises(ConfigError, match="not possible with the ollama backend"):
        parse_config('[teachers.q]\nbackend = "ollama"\nmodel = "m"\nconstrain = "grammar"\n', tmp_path / "c.toml")


def test_a_pinned_version_is_what_the_session_sends_and_records(shake_env, config, script_file):
    demo = Demo(builtin.worker_user("Say hi.", "Say hi.", None, 'print("hello")\n'), {"reasoning": "one more line",
                                                                     "script": 'print("hello")\nprint("hi")\n'})
    pinned = builtin_prompt("worker").with_demos([demo])
    save_prompt(config.data_dir, pinned, created_at="x")
    with open(shake_env / "config.toml", "a") as f:
        f.write(f'[prompts]\nworker = "{pinned.version}"\n')
    config = load_config()
    assert load_prompt_book(config)["worker"].version == pinned.version
    a = ScriptedTeacher("a", {"worker": [worker_answer('print("hello")\nprint("bye")\n')]})
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": a, "b": a}), config, script_file, "say bye")
        session.plan()
        session.propose()
        worker_messages = [m for agent, m in a.calls if agent == "worker"][0]
        assert worker_messages[2]["content"].endswith('print("hi")\n```\none more line')  # the demonstration's answer
        session.apply_feedback(session.classify("accept: good"))
        row = next(r for r in store.rows(session.id) if r.is_worker)
    assert row.chosen.prompt_version == pinned.version
    assert row.chosen.constraint == ""  # a scripted teacher is held to nothing
    assert row.prompt.chat() == worker_messages


def test_a_missing_pinned_version_stops_the_session_with_its_name(shake_env, config, script_file):
    with open(shake_env / "config.toml", "a") as f:
        f.write('[prompts]\nlead = "lead-0123456789ab"\n')
    with pytest.raises(ConfigError, match="lead-0123456789ab"):
        load_prompt_book(load_config())


def test_prompts_commands(shake_env, capsys, tmp_path):
    instructions = tmp_path / "lead.txt"
    instructions.write_text("You lead. Keep every function and every check of the script.\n")
    assert main(["prompts", "add", "lead", "--from", str(instructions), "--pin"]) == 0
    version = load_config().prompts.lead
    assert version.startswith("lead-")
    assert main(["prompts", "list"]) == 0
    assert f"{version}  0 demos" in capsys.readouterr().out
    assert main(["prompts", "show", "lead"]) == 0
    shown = capsys.readouterr().out
    assert "Keep every function" in shown and "INSTRUCTION:" in shown  # the format is always added
    for argv, message in ((["prompts", "add", "lead", "--from", str(tmp_path / "none.txt")], "no file at"),
                          (["prompts", "show", "nobody"], "neither an agent"),
                          (["prompts", "optimize", "--agents", "planner"], "--agents takes")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["prompts", "add", "worker", "--from", str(empty)]) == 2


def test_default_book_is_the_builtin_prompts():
    assert all(DEFAULT_BOOK[a] == builtin_prompt(a) for a in PROMPT_AGENTS)
    assert PromptBook()["judge"].shape.name == "judge@2"
