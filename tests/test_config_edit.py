"""Adding a teacher to the user's config file: comments and order kept, the worker's list extended, one validator."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import AGENTS, DEFAULT_CONFIG_TOML, TeacherConfig, load_config, parse_config, write_default_config
from engine.config_edit import add_teacher, free_name, slug
from engine.errors import ConfigError, InputError

QWEN = TeacherConfig(name="qwen", backend="ollama", model="qwen2.5-coder:7b", host="http://127.0.0.1:11434", n_ctx=8192)


def is_subsequence(old: list[str], new: list[str]) -> bool:
    it = iter(new)
    return all(line in it for line in old)


def test_the_documented_file_keeps_every_line_and_gains_the_teacher(tmp_path):
    path = write_default_config(tmp_path / "config.toml")
    after = add_teacher(path, QWEN, comment="found by discovery")
    text = path.read_text()
    assert is_subsequence([line for line in DEFAULT_CONFIG_TOML.splitlines() if not line.startswith("worker =")],
                          text.splitlines())
    assert 'worker = ["qwen", "smollm2"]' in text and "\n\n\n" not in text
    assert after.agents == {"planner": ["smollm2"], "lead": ["smollm2"], "worker": ["qwen", "smollm2"],
                            "analyzer": ["smollm2"]}
    assert load_config(path).teachers["qwen"] == QWEN
    lines = text.splitlines()
    # the new table follows the last teacher, and the [agents] comment still introduces [agents]
    assert lines.index("[teachers.qwen]") < lines.index("# Which teachers each agent uses, in order. The worker moves to its next teacher after")
    assert lines[lines.index("[agents]") - 1].startswith("# `session.switch_teacher_after`")
    assert lines[lines.index("[teachers.qwen]") + 1] == "# found by discovery"
    # only what differs from the defaults is written
    assert tomllib.loads(text)["teachers"]["qwen"] == {"backend": "ollama", "model": "qwen2.5-coder:7b",
                                                       "host": "http://127.0.0.1:11434", "n_ctx": 8192}


def test_a_missing_file_becomes_the_documented_one_with_the_teacher(tmp_path):
    path = tmp_path / "sub" / "config.toml"
    add_teacher(path, QWEN)
    assert is_subsequence([line for line in DEFAULT_CONFIG_TOML.splitlines() if not line.startswith("worker =")],
                          path.read_text().splitlines())
    assert load_config(path).agents["worker"] == ["qwen", "smollm2"]


def test_defaults_in_effect_are_written_out_so_nobody_else_changes(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("# mine\n[runner]\ntimeout_s = 3.0 # short\n")
    after = add_teacher(path, QWEN)
    assert path.read_text().startswith("# mine\n[runner]\ntimeout_s = 3.0 # short\n")
    assert set(after.teachers) == {"smollm2", "qwen"} and after.teachers["smollm2"].backend == "embedded"
    assert after.agents["worker"] == ["qwen", "smollm2"] and after.agents["lead"] == ["smollm2"]
    assert after.runner.timeout_s == 3.0

    # teachers without [agents]: every agent used the first teacher, and still does
    path.write_text('[teachers.x]\nbackend = "embedded"\n[teachers.y]\nbackend = "embedded"\n')
    after = add_teacher(path, QWEN)
    assert after.agents == {"planner": ["x"], "lead": ["x"], "worker": ["qwen", "x"], "analyzer": ["x"]}


def test_inline_teachers_and_a_worker_array_with_comments(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[teachers]\nsmall = { backend = "embedded" }\n\n[agents]\nplanner = ["small"]\nlead = ["small"]\n'
                    'analyzer = ["small"]\nworker = [\n  "small", # the bundled one\n]\n')
    after = add_teacher(path, QWEN)
    assert after.agents["worker"] == ["qwen", "small"]
    assert "# the bundled one" in path.read_text()


def test_a_taken_name_needs_force_and_bad_input_leaves_the_file_alone(tmp_path):
    path = write_default_config(tmp_path / "config.toml")
    add_teacher(path, QWEN)
    before = path.read_bytes()
    with pytest.raises(InputError, match="already configured.*--force"):
        add_teacher(path, TeacherConfig(name="qwen", backend="ollama", model="other"))
    with pytest.raises(InputError, match="teacher name"):
        add_teacher(path, TeacherConfig(name="a b", backend="ollama", model="m"))
    assert path.read_bytes() == before
    after = add_teacher(path, TeacherConfig(name="qwen", backend="ollama", model="other"), force=True)
    assert after.teachers["qwen"].model == "other" and after.agents["worker"] == ["qwen", "smollm2"]
    after = add_teacher(path, TeacherConfig(name="smollm2"), force=True)  # an existing one moves to the front
    assert after.agents["worker"] == ["smollm2", "qwen"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[teachers.x\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        add_teacher(broken, QWEN)
    assert broken.read_text() == "[teachers.x\n"
    with pytest.raises(ConfigError, match="needs model"):  # the one validator refuses the result
        add_teacher(path, TeacherConfig(name="empty", backend="ollama", model=""))


def test_a_symlinked_config_stays_a_symlink(tmp_path):
    real = write_default_config(tmp_path / "dotfiles" / "config.toml")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    add_teacher(link, QWEN)
    assert link.is_symlink() and "qwen" in load_config(link).teachers


def test_names_from_models():
    assert slug("qwen2.5-coder:7b") == "qwen2.5-coder-7b"
    assert slug("llama3.2:latest") == "llama3.2"
    assert slug("hf.co/bartowski/Coder-GGUF:Q4_K_M") == "coder-gguf-q4_k_m"
    assert free_name("a", {"a": 1, "a-2": 2}) == "a-3" and free_name("b", {"a": 1}) == "b"


# -- property: whatever the user's file looked like, adding a teacher changes only that ---------------
names = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def user_configs(draw):
    teachers = draw(st.lists(names, min_size=0, max_size=4, unique=True))
    lines = [f"# {draw(st.text(alphabet='xyz ', max_size=8))}"]
    for t in teachers:
        lines += [f"[teachers.{t}]", 'backend = "embedded"  # note', ""]
        if draw(st.booleans()):
            lines.append("# a comment between tables")
    configured = teachers or ["smollm2"]
    if draw(st.booleans()):
        lines.append("[agents]")
        for agent in AGENTS:
            if draw(st.booleans()) or not teachers:
                continue  # a missing agent uses the default ["smollm2"], which must exist then
            lines.append(f"{agent} = {draw(st.lists(st.sampled_from(configured), min_size=1, max_size=3, unique=True))}"
                         .replace("'", '"'))
    text = "\n".join(lines) + "\n"
    try:
        parse_config(text, Path("x.toml"))
    except ConfigError:
        text = "\n".join(lines[:1]) + "\n"  # not a valid starting point: start from nothing
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=user_configs(), new=st.sampled_from(["a", "new", "smollm2"]), force=st.booleans())
def test_adding_changes_only_the_teacher_and_the_workers_order(tmp_path, text, new, force):
    path = tmp_path / "config.toml"
    path.write_text(text)
    before = parse_config(text, path)
    teacher = TeacherConfig(name=new, backend="ollama", model="m:1", host="http://127.0.0.1:11434", n_ctx=2048)
    if new in before.teachers and not force:
        with pytest.raises(InputError):
            add_teacher(path, teacher)
        assert path.read_text() == text
        return
    after = add_teacher(path, teacher, force=force)
    assert after == load_config(path)
    assert after.teachers[new] == teacher
    assert {k: v for k, v in after.teachers.items() if k != new} == {k: v for k, v in before.teachers.items() if k != new}
    assert after.agents["worker"] == [new] + [n for n in before.agents["worker"] if n != new]
    assert all(after.agents[a] == before.agents[a] for a in AGENTS if a != "worker")
    assert is_subsequence([line for line in text.splitlines() if line.lstrip().startswith("#")],
                          path.read_text().splitlines())
