from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ (the tiny student, the --quick checks)

from engine.config import load_config  # noqa: E402
from engine.store import DatasetStore  # noqa: E402
from dataset_factory import make_dataset  # noqa: E402

# The default student converted from its GGUF once per test run (engine/student/converted.py), shared
# by every test and every `shake` subprocess the tests start, and never the user's own cache; a
# developer running one file at a time may keep one between runs with SHAKE_TEST_CACHE=DIR.
if os.environ.get("SHAKE_TEST_CACHE"):
    os.environ["SHAKE_CACHE"] = os.environ["SHAKE_TEST_CACHE"]
else:
    os.environ["SHAKE_CACHE"] = tempfile.mkdtemp(prefix="shake-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SHAKE_CACHE"], ignore_errors=True)

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
[analyzer]
scoring = "off"  # scripted teachers' scores are placeholders; tests/test_constrained.py scores with the real model
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


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory, smol_tokenizer):
    from benchmarks.tiny_student import tiny_student

    return str(tiny_student(tmp_path_factory.mktemp("tiny-llama"), smol_tokenizer))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, smol_teacher):
    root = tmp_path_factory.mktemp("dataset")
    with pytest.MonkeyPatch.context() as mp:
        config = root / "config.toml"
        config.write_text('[teachers.a]\nbackend = "embedded"\n[teachers.b]\nbackend = "embedded"\n[session]\nswitch_teacher_after = 9\n')
        mp.setenv("SHAKE_CONFIG", str(config))
        mp.setenv("SHAKE_DATA", str(root / "data"))
        rows = make_dataset(root / "data", root, smol_teacher)
    assert rows == 12
    return root / "data"


@pytest.fixture(scope="session")
def smol_server():
    """One real `llama_cpp.server` on loopback with the bundled SmolLM2 (alias "smol", log-probabilities
    on), shared by every test that talks to a real OpenAI-compatible server: each cold start costs a
    model load and the server's own imports."""
    from engine.teachers.embedded import default_gguf_path
    from servers import llama_cpp_server

    with llama_cpp_server(str(default_gguf_path())) as url:
        yield url


@pytest.fixture(scope="session")
def one_step_run(tmp_path_factory, dataset, tiny_student):
    """A finished one-step run of the tiny student on the session's dataset (half of its steps held out),
    trained once for every test that only reads a run; a test that writes into it takes `run_copy`."""
    from trainer.config import TrainConfig
    from trainer.recipe import train

    run_dir = tmp_path_factory.mktemp("one-step") / "run"
    train(TrainConfig(student=tiny_student, max_steps=1, batch_size=2, lora_r=4, eval_fraction=0.5, max_length=1024,
                      run_dir=str(run_dir)), dataset, progress=False, log=lambda m: None)
    return run_dir


@pytest.fixture
def run_copy(one_step_run, tmp_path):
    """This test's own copy of `one_step_run`."""
    return Path(shutil.copytree(one_step_run, tmp_path / "run"))
