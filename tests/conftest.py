from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from engine.config import load_config  # noqa: E402
from engine.store import DatasetStore  # noqa: E402
from dataset_factory import make_dataset  # noqa: E402

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
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    return str(path)


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
