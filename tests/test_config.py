"""Configuration: defaults defined once, XDG locations, overrides, and one clear message for every bad value."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import (
    DEFAULT_CONFIG_TOML,
    Config,
    TeacherConfig,
    config_path,
    default_of,
    load_config,
    parse_config,
    sections,
    settings_of,
    write_default_config,
)
from engine.errors import ConfigError

# Users have files: every key and default the documented file had before the defaults moved into the
# dataclasses. A change here is a change to users' configurations.
DOCUMENTED_BEFORE = {
    "paths": {"data_dir": ""},
    "teachers": {"smollm2": {"backend": "embedded", "model": "", "host": "", "api_key": "", "n_ctx": 4096,
                             "top_logprobs": 20, "timeout_s": 300.0, "connect_timeout_s": 5.0,
                             "chunk_timeout_s": 60.0, "retries": 3, "seed": 0, "n_threads": 0}},
    "agents": {"planner": ["smollm2"], "lead": ["smollm2"], "worker": ["smollm2"], "analyzer": ["smollm2"]},
    "sampling": {"planner": {"temperature": 0.2, "max_tokens": 256}, "lead": {"temperature": 0.2, "max_tokens": 256},
                 "worker": {"temperature": 0.0, "max_tokens": 1024},
                 # 16 -> 96 on purpose (issue #13): the analyzer reasons before its label now
                 "analyzer": {"temperature": 0.0, "max_tokens": 96}},
    "session": {"switch_teacher_after": 3, "max_steps": 8},
    "runner": {"timeout_s": 10.0, "cpu_s": 10, "memory_mb": 1024, "file_size_mb": 16, "open_files": 64,
               "output_cap_kb": 64, "max_processes": 64, "sandbox": "bwrap"},
    "student": {"mode": "off", "teachers": [], "first_share": 0.5, "judge": True, "kd_teacher": ""},
    "ui": {"theme": "shake-dark"},
}


def test_documented_keys_and_defaults_are_kept():
    documented = tomllib.loads(DEFAULT_CONFIG_TOML)
    for section, keys in DOCUMENTED_BEFORE.items():
        if section in ("teachers", "sampling"):
            for table, values in keys.items():
                assert {k: documented[section][table][k] for k in values} == values
        else:
            assert {k: documented[section][k] for k in keys} == keys


def test_every_key_is_documented_with_its_help():
    for name, spec in sections():
        for key, (f, _) in settings_of(spec.cls).items():
            assert f.metadata["setting"].help, f"{name}.{key} has no help text"
            assert f"{key} = " in DEFAULT_CONFIG_TOML or f"[{name}.{key}]" in DEFAULT_CONFIG_TOML


def test_defaults_and_xdg_locations(monkeypatch, tmp_path):
    monkeypatch.delenv("SHAKE_CONFIG", raising=False)
    monkeypatch.delenv("SHAKE_DATA", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = load_config()
    assert config.config_path == tmp_path / "cfg" / "shake" / "config.toml"
    assert config.data_dir == tmp_path / "data" / "shake"
    assert config.agents["worker"] == ["smollm2"] and config.teachers["smollm2"].backend == "embedded"
    assert config.runner.timeout_s == 10.0


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("SHAKE_CONFIG", str(tmp_path / "x.toml"))
    monkeypatch.setenv("SHAKE_DATA", str(tmp_path / "d"))
    assert config_path() == tmp_path / "x.toml"
    assert load_config().data_dir == tmp_path / "d"


def test_the_documented_defaults_parse_to_the_same_config(tmp_path):
    a = parse_config(DEFAULT_CONFIG_TOML, tmp_path / "c.toml")
    b = parse_config("", tmp_path / "c.toml")
    assert a == b


def test_an_unconfigured_teacher_has_the_field_defaults(tmp_path):
    config = parse_config("", tmp_path / "c.toml")
    assert config.teacher("elsewhere") == TeacherConfig("elsewhere")
    assert config.teacher("elsewhere").top_logprobs == default_of(TeacherConfig, "top_logprobs") == 20


def test_init_writes_and_refuses_to_overwrite(monkeypatch, tmp_path):
    path = tmp_path / "c" / "config.toml"
    write_default_config(path)
    assert path.read_text() == DEFAULT_CONFIG_TOML
    with pytest.raises(ConfigError, match="already exists"):
        write_default_config(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[sesion]\n", "unknown key 'sesion'.*did you mean 'session'"),
        ("[teachers.x]\nbackend = 'gpt'\n", "backend must be one of"),
        ("[teachers.x]\nbackend = 'ollama'\n", "needs model"),
        ("[agents]\nworker = ['nope']\n", "uses teacher 'nope'"),
        ("[runner]\ntimeout_s = 'ten'\n", r"timeout_s must be a number in \(0, 3600\], got string 'ten'"),
        ("[runner]\ntimeout_s = 0\n", r"timeout_s must be a number in \(0, 3600\], got 0.0"),
        ("[teachers.x]\ntop_logprobs = 50\n", r"top_logprobs must be an integer in 0..20, got 50"),
        ("not toml = = 1", "not valid TOML"),
        # wrong types where the old parser crashed with a traceback
        ("[agents]\nworker = 3\n", r"\[agents\] worker must be a list of strings, got integer 3"),
        ("[agents]\nworker = [1, 2]\n", r"\[agents\] worker must be a list of strings"),
        ("agents = 'x'\n", r"\[agents\] must be a table, got string 'x'"),
        ("teachers = 5\n", r"\[teachers\] must be a table, got integer 5"),
        ("[teachers]\nx = 5\n", r"\[teachers.x\] must be a table, got integer 5"),
        ("[teachers.x]\nmodel = 7\n", r"\[teachers.x\] model must be a string, got integer 7"),
        ("[paths]\ndata_dir = 5\n", r"\[paths\] data_dir must be a string, got integer 5"),
        ("[paths]\ndata_dir = ['a']\n", r"\[paths\] data_dir must be a string, got array"),
        ("session = []\n", r"\[session\] must be a table"),
        ("[sampling]\nworker = 1\n", r"\[sampling.worker\] must be a table"),
        ("[student]\njudge = 1\n", r"judge must be true or false, got integer 1"),
        ("[ui.keys]\n'app.quit' = 1\n", r"keys must be a table of strings"),
        # non-finite and absurd numbers
        ("[runner]\ntimeout_s = nan\n", r"timeout_s must be a finite number in \(0, 3600\], got nan"),
        ("[runner]\ntimeout_s = inf\n", r"timeout_s must be a finite number in \(0, 3600\], got inf"),
        ("[runner]\nmemory_mb = 9223372036854775807\n", r"memory_mb must be an integer in 64..1048576"),
        ("[runner]\noutput_cap_kb = 1500000\n", r"output_cap_kb must be an integer in 1..16384, got 1500000"),
        ("[teachers.x]\nchunk_timeout_s = -inf\n", r"chunk_timeout_s must be a finite number"),
        ("[sampling.worker]\ntemperature = nan\n", r"temperature must be a finite number in \[0, 10\]"),
        ("[student]\nfirst_share = 1.5\n", r"first_share must be a number in \[0, 1\], got 1.5"),
    ],
)
def test_bad_config_gives_one_clear_message(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text, tmp_path / "c.toml")


def numeric_settings():
    """(where, key, bounds, is_float) for every bounded number in every section."""
    found = []
    for name, spec in sections():
        where = {"tables": f"teachers.x", "per_agent": f"{name}.worker"}.get(spec.shape, name)
        for key, (f, hint) in settings_of(spec.cls).items():
            bounds = f.metadata["setting"].bounds
            if bounds is not None:
                found.append((where, key, bounds, hint is float))
    return found


NUMERIC = numeric_settings()


def toml_number(value: float, is_float: bool) -> str:
    if is_float and math.isnan(value):
        return "nan"
    if is_float and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value)) if is_float else str(int(value))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC), st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True)))
def test_a_number_is_accepted_exactly_when_it_is_finite_and_in_range(setting, raw):
    """The rule for every bounded key: finite and inside its range parses to that value; anything else is
    refused with the range in the message."""
    where, key, bounds, is_float = setting
    if not is_float and isinstance(raw, float):
        raw = int(raw) if math.isfinite(raw) else 0
    value = float(raw) if is_float else raw
    text = f"[{where}]\n{key} = {toml_number(value, is_float)}\n"
    if where.startswith("teachers."):
        text = f"[{where}]\nbackend = 'embedded'\n{key} = {toml_number(value, is_float)}\n"
    accepted = math.isfinite(value) and value in bounds
    if accepted:
        config = parse_config(text, Path("c.toml"))
        section, _, table = where.partition(".")
        holder = getattr(config, section)
        holder = holder[table] if table else holder
        assert getattr(holder, key) == value
    else:
        with pytest.raises(ConfigError, match=rf"{key} must be .* in {__import__('re').escape(str(bounds))}"):
            parse_config(text, Path("c.toml"))


def test_every_number_has_a_range():
    """Unbounded numbers are how `memory_mb = 2**63 - 1` broke every run."""
    for name, spec in sections():
        for key, (f, hint) in settings_of(spec.cls).items():
            if hint in (int, float):
                assert f.metadata["setting"].bounds is not None, f"[{name}] {key} has no range"


def test_a_config_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"[runner]\n# caf\xe9\ntimeout_s = 5.0\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)"):
        load_config(path)


def test_a_fifo_as_the_config_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(fifo)


def test_agents_follow_a_replaced_teacher_list(tmp_path):
    config = parse_config("[teachers.big]\nbackend = 'ollama'\nmodel = 'qwen2.5-coder:7b'\n", Path("c.toml"))
    assert config.agents["worker"] == ["big"]


def test_a_section_is_declared_in_one_place():
    """Every section of `Config` is rendered into the documented file and parsed back by the generic path."""
    documented = tomllib.loads(DEFAULT_CONFIG_TOML)
    names = [f.name for f in dataclasses.fields(Config) if "section" in f.metadata]
    assert list(documented) == names
    hints = typing.get_type_hints(Config)
    assert all(hints[name] is not None for name in names)


@pytest.mark.parametrize("field, value", [("timeout_s", math.nan), ("timeout_s", math.inf), ("timeout_s", 0.0),
                                          ("memory_mb", 2**63 - 1), ("sandbox", "off")])
def test_a_runner_config_made_in_code_is_held_to_the_same_rules(field, value):
    """`RunnerConfig(timeout_s=nan)` or `inf` turned the wall-clock timeout off: only the file was checked."""
    from engine.config import RunnerConfig

    with pytest.raises(ConfigError, match=rf"\[runner\] {field} must be"):
        RunnerConfig(**{field: value})
    assert RunnerConfig(timeout_s=2).timeout_s == 2  # an int where a float belongs is still a number


def test_a_config_file_over_the_cap_is_refused_unread(tmp_path):
    """A 10 MB config loaded (the README says a too-large one is refused)."""
    from engine.config import MAX_CONFIG_BYTES

    path = tmp_path / "c.toml"
    path.write_text("[runner]\ntimeout_s = 5.0\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=rf"is over {MAX_CONFIG_BYTES} bytes"):
        load_config(path)
    path.write_text("[runner]\ntimeout_s = 5.0\n" + "# padding\n" * (MAX_CONFIG_BYTES // 20))
    assert load_config(path).runner.timeout_s == 5.0


def test_a_config_nested_thousands_deep_is_one_clear_error(tmp_path):
    """A 5000-deep nested array made tomllib recurse out of the stack: exit 70, "a bug in shake"."""
    path = tmp_path / "c.toml"
    path.write_text("[ui]\ntheme = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)
