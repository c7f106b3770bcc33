from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from engine.config import load_config  # noqa: E402
from engine.store import DatasetStore  # noqa: E402

TWO_TEACHERS = """
[teachers.a]
backend = "embedded"
[teachers.b]
backend = "embedded"
[agents]
planner = ["a"]
lead = ["a"]
worker = ["a", "b"]
analyzer = ["a"]
[session]
switch_teacher_after = 2
[runner]
timeout_s = 5.0
"""


@pytest.fixture
def shake_env(tmp_path, monkeypatch):
    """Isolated config and data directories, as a user would set them."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(TWO_TEACHERS)
    monkeypatch.setenv("SHAKE_CONFIG", str(config_file))
    monkeypatch.setenv("SHAKE_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def config(shake_env):
    return load_config()


@pytest.fixture
def store(config):
    with DatasetStore(config.data_dir) as s:
        yield s


@pytest.fixture
def script_file(tmp_path):
    path = tmp_path / "hello.py"
    path.write_text('print("hello")\n')
    return path


@pytest.fixture(scope="session")
def smol_tokenizer():
    from trainer.student import load_tokenizer

    return load_tokenizer("")


@pytest.fixture(scope="session")
def smol_teacher():
    from engine.config import TeacherConfig
    from engine.teachers.embedded import EmbeddedTeacher

    return EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=8))
