"""Configuration: defaults, XDG locations, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import DEFAULT_CONFIG_TOML, config_path, load_config, parse_config, write_default_config
from engine.errors import ConfigError


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
    assert a.teachers == b.teachers and a.agents == b.agents and a.sampling == b.sampling


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
        ("[runner]\ntimeout_s = 'ten'\n", "timeout_s must be float"),
        ("[runner]\ntimeout_s = 0\n", "greater than 0"),
        ("[teachers.x]\ntop_logprobs = 50\n", "0..20"),
        ("not toml = = 1", "not valid TOML"),
    ],
)
def test_bad_config_gives_one_clear_message(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text, tmp_path / "c.toml")


def test_agents_follow_a_replaced_teacher_list(tmp_path):
    config = parse_config("[teachers.big]\nbackend = 'ollama'\nmodel = 'qwen2.5-coder:7b'\n", Path("c.toml"))
    assert config.agents["worker"] == ["big"]
