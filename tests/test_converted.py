"""A GGUF student is converted to Hugging Face form once per GGUF digest and kept in the cache
(engine/student/converted.py); every later load, in any process, reads the conversion."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine.student import converted as conv
from engine.student.loader import load_base_model, load_tokenizer


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from benchmarks.tiny_student import tiny_student_gguf

    return tiny_student_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAKE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def gguf_loads(monkeypatch):
    """Every transformers load straight from a GGUF file (the slow conversion), by file name."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls: list[str] = []
    for cls in (AutoModelForCausalLM, AutoTokenizer):
        original = cls.from_pretrained.__func__

        def recording(klass, *args, _original=original, **kwargs):
            if kwargs.get("gguf_file"):
                calls.append(f"{klass.__name__}:{kwargs['gguf_file']}")
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(recording))
    return calls


def test_the_cache_directory_is_shake_cache_else_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("SHAKE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert conv.cache_dir() == tmp_path / "xdg" / "shake"
    monkeypatch.setenv("SHAKE_CACHE", str(tmp_path / "mine"))
    assert conv.cache_dir() == tmp_path / "mine"


def test_a_gguf_is_converted_once_and_then_read_from_the_cache(tiny_gguf, cache, gguf_loads):
    cpu = torch.device("cpu")
    first = load_base_model(str(tiny_gguf), device=cpu)
    tokenizer = load_tokenizer(str(tiny_gguf))
    again = load_base_model(str(tiny_gguf), device=cpu, dtype=torch.bfloat16)
    load_tokenizer(str(tiny_gguf))
    # before the cache, each of the four loads converted the GGUF again
    assert gguf_loads == ["AutoModelForCausalLM:tiny.gguf", "AutoTokenizer:tiny.gguf"]
    entry = cache / "students" / conv.gguf_digest(tiny_gguf)
    assert (entry / conv.CONVERTED).exists() and (entry / "config.json").exists()
    assert [p.name for p in (cache / "students").iterdir()] == [entry.name]  # no temporary directory left
    assert again.dtype == torch.bfloat16
    # the run records the GGUF's directory as its base, as it did before the cache (PEFT's base_model_name_or_path)
    assert first.name_or_path == str(tiny_gguf.parent)
    ids = torch.tensor([tokenizer.encode("print('hello')")])
    from transformers import AutoModelForCausalLM

    direct = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(first(ids).logits, direct(ids).logits, rtol=0, atol=0)  # the same weights


def test_other_bytes_are_another_entry(tiny_gguf, cache, tmp_path):
    copy = tmp_path / "copy" / "tiny.gguf"
    copy.parent.mkdir()
    shutil.copy(tiny_gguf, copy)
    assert conv.entry(copy) == conv.entry(tiny_gguf)  # same bytes, same conversion
    with copy.open("ab") as f:
        f.write(b"\0")
    assert conv.entry(copy) != conv.entry(tiny_gguf)


def test_a_killed_conversion_leaves_nothing_that_is_read(tiny_gguf, cache, monkeypatch, smol_tokenizer):
    from transformers import AutoTokenizer, PreTrainedModel

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # stands for the kill, in the middle of the save

    with monkeypatch.context() as m:
        m.setattr(PreTrainedModel, "save_pretrained", killed)
        with pytest.raises(KeyboardInterrupt):
            conv.converted(tiny_gguf)
    assert not any((cache / "students").iterdir())  # the temporary directory went with it
    half = conv.entry(tiny_gguf)  # a conversion cut off by a power loss: some files, no marker
    half.mkdir(parents=True)
    (half / "config.json").write_text("{")
    # the tiny GGUF carries the default student's tokenizer: its conversion (slow, and not what is
    # tested here) is the one this test run already made
    real = AutoTokenizer.from_pretrained
    monkeypatch.setattr(AutoTokenizer, "from_pretrained",
                        lambda *a, **kw: smol_tokenizer if kw.get("gguf_file") else real(*a, **kw))
    assert conv.converted(tiny_gguf) == half and (half / conv.CONVERTED).exists()
    assert [p.name for p in (cache / "students").iterdir()] == [half.name]
    assert load_base_model(str(tiny_gguf), device=torch.device("cpu")).config.num_hidden_layers == 2  # whole again


@pytest.mark.slow
def test_the_default_student_from_the_cache_is_the_default_student(smol_tokenizer):
    """The bundled SmolLM2 GGUF: the cached conversion (this test run's, tests/conftest.py) has the
    tokenizer, chat template and weights that transformers' own GGUF loading gives."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.teachers.embedded import default_gguf_path

    gguf = default_gguf_path()
    direct_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "def f(x):\n    return x  # é → 日\n"
    assert smol_tokenizer.encode(text) == direct_tokenizer.encode(text)
    messages = [{"role": "user", "content": "hi"}]
    assert smol_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        direct_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    cached = load_base_model("", device=torch.device("cpu"))
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = torch.tensor([smol_tokenizer.encode(text)])
    with torch.no_grad():
        torch.testing.assert_close(cached(ids).logits, direct(ids).logits, rtol=0, atol=0)
