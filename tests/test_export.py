"""`shake student export` on GGUF students (the default one included): merged directory, student.gguf,
Modelfile, each checked against the student it came from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import TeacherConfig
from trainer.config import TrainConfig
from trainer.recipe import train

MESSAGES = [{"role": "user", "content": "Write print(1)"}]
TEXT = "REASONING: one line.\n```python\nprint('hello world')\n```\n"


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """Twelve rows made by sessions with a scripted teacher (no real model to load: quick)."""
    from dataset_factory import make_dataset

    root = tmp_path_factory.mktemp("rows")
    with pytest.MonkeyPatch.context() as mp:
        (root / "config.toml").write_text('[teachers.a]\nbackend = "embedded"\n[teachers.b]\nbackend = "embedded"\n'
                                          '[session]\nswitch_teacher_after = 9\n')
        mp.setenv("SHAKE_CONFIG", str(root / "config.toml"))
        mp.setenv("SHAKE_DATA", str(root / "data"))
        assert make_dataset(root / "data", root) == 12
    return root / "data"


@pytest.fixture(scope="module")
def tiny_gguf_student(tmp_path_factory, tiny_student):
    """The tiny random Llama as a GGUF file: a GGUF student that loads in seconds."""
    from engine.teachers.embedded import default_gguf_path
    from trainer.gguf_export import export_gguf

    return export_gguf(Path(tiny_student), tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf", default_gguf_path())


def trained_run(student: str, dataset: Path, run_dir: Path) -> Path:
    # a high learning rate, so that the adapter is far from zero and the merge is visible
    cfg = TrainConfig(student=student, max_steps=1, batch_size=2, lr=2e-2, warmup_steps=0, eval_fraction=0.0,
                      lora_r=4, lora_dropout=0.0, run_dir=str(run_dir), max_length=1024)
    return train(cfg, dataset, progress=False, log=lambda m: None).run_dir


def check_export(run_dir: Path, out: Path):
    """Every file of a --gguf --ollama export, each against the trained student it came from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.teachers.embedded import EmbeddedTeacher
    from engine.teachers.student import StudentTeacher
    from engine.student.precision import FP32
    from trainer.trained import load_trained
    from trainer.export import export_student
    from trainer.modelfile import render_go_template

    exported = export_student(run_dir, out, gguf=True, ollama=True)
    assert exported.gguf_max_diff < 1e-3  # export's own check (F32 KV cache) of the GGUF against the merged model
    # the merged directory is a plain Hugging Face model: no leftover GGUF quantization mark
    assert "quantization_config" not in json.loads((exported.merged / "config.json").read_text())
    merged = AutoModelForCausalLM.from_pretrained(exported.merged).eval()
    adapted, tokenizer, _, _ = load_trained(run_dir, device=torch.device("cpu"), precision=FP32)
    ids = torch.tensor([tokenizer.encode("print('hello')")])
    with torch.no_grad():
        trained = adapted(ids).logits
        torch.testing.assert_close(merged(ids).logits, trained, rtol=1e-4, atol=1e-4)
        with adapted.disable_adapter():
            assert (trained - adapted(ids).logits).abs().max() > 1e-3  # the merge has something to show
    # the GGUF on the embedded backend scores like the merged student on the student backend; llama.cpp
    # keeps its KV cache in F16 there, which costs SmolLM2's 30 layers up to ~0.013 nats on a token
    as_gguf = EmbeddedTeacher(TeacherConfig(name="g", model=str(exported.gguf), n_ctx=512))
    as_hf = StudentTeacher(TeacherConfig(name="h", backend="student", model=str(exported.merged), precision="fp32"))
    a = as_gguf.score(MESSAGES, TEXT, top_logprobs=3)
    b = as_hf.score(MESSAGES, TEXT, top_logprobs=3)
    assert a.token_ids.tolist() == b.token_ids.tolist()
    diff = np.abs(a.logprobs - b.logprobs)
    # measured: max 0.024, mean 0.0072 on the 7 Dec 2026 dataset (the rows changed with issue #26's
    # prompts; the mean was under 0.005 before), both within what an F16 KV cache costs
    assert diff.max() < 3e-2 and diff.mean() < 1e-2, (diff.max(), diff.mean())
    # the Modelfile's template renders every conversation the way the student's chat template does
    text = exported.modelfile.read_text()
    assert "FROM ./student.gguf" in text and 'PARAMETER stop "<|im_end|>"' in text
    saved = AutoTokenizer.from_pretrained(exported.merged)
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M).group(1)
    for conversation in CONVERSATIONS:
        want = saved.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        assert render_go_template(template, conversation) == want
    return exported


CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c\nd"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "x"},
     {"role": "user", "content": "y"}],
]


def test_a_gguf_student_exports_merged_gguf_and_modelfile(rows, tiny_gguf_student, tmp_path):
    run_dir = trained_run(str(tiny_gguf_student), rows, tmp_path / "run")
    check_export(run_dir, tmp_path / "out")


@pytest.mark.slow
def test_the_default_student_exports_merged_gguf_and_modelfile(rows, tmp_path):
    """What every user runs first: the bundled SmolLM2-135M (a Q4_1 GGUF that transformers tags as
    GGUF-quantized, which `save_pretrained` refuses to serialize)."""
    run_dir = trained_run("", rows, tmp_path / "run")
    check_export(run_dir, tmp_path / "out")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_each_architecture_scores_the_same_on_llama_cpp(arch, smol_tokenizer, tmp_path):
    """A tiny random model of each architecture the GGUF writer knows, written to GGUF and checked by
    export's own check (token ids, log-probabilities) and by the embedded backend's scoring."""
    import transformers

    from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path
    from engine.teachers.student import StudentTeacher
    from trainer.gguf_export import check_gguf, export_gguf

    config_class, model_class = {"llama": ("LlamaConfig", "LlamaForCausalLM"),
                                 "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
                                 "qwen3": ("Qwen3Config", "Qwen3ForCausalLM")}[arch]
    extra = {"head_dim": 32} if arch == "qwen3" else {}  # Qwen3's head size is not hidden / heads
    config = getattr(transformers, config_class)(
        vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=arch != "llama",
        bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id, **extra)
    torch.manual_seed(1)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():  # random biases and norms, so that a misplaced one shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(tmp_path / "hf")
    smol_tokenizer.save_pretrained(tmp_path / "hf")
    out = export_gguf(tmp_path / "hf", tmp_path / "m.gguf", default_gguf_path())
    assert check_gguf(out, model, smol_tokenizer) < 2e-3
    a = EmbeddedTeacher(TeacherConfig(name="g", model=str(out), n_ctx=512)).score(MESSAGES, TEXT, top_logprobs=3)
    b = StudentTeacher(TeacherConfig(name="h", backend="student", model=str(tmp_path / "hf"), precision="fp32")).score(
        MESSAGES, TEXT, top_logprobs=3)
    assert a.token_ids.tolist() == b.token_ids.tolist()
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=2e-3)


# -- the Modelfile's template -----------------------------------------------------------------------
# A template no model in Ollama's map has: Ollama would fall back to `{{ .Prompt }}` for it.
UNKNOWN_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}### Rules\n{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### Ask {{ '{{' }}\n{{ m['content'] }}\n{% else %}### Reply\n{{ m['content'] }}\n<END>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}### Reply\n{% endif %}")
# Llama 2 folds the system message into the first user turn: no per-message wrapping to translate.
FOLDED_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{% elif m['role'] == 'user' %}[INST] "
    "{% if loop.index0 == 1 %}<<SYS>>{{ messages[0]['content'] }}<</SYS>> {% endif %}{{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }}</s>{% endif %}{% endfor %}")


def with_template(tokenizer, template):
    import copy

    other = copy.deepcopy(tokenizer)
    other.chat_template = template
    return other


def template_of(modelfile_text: str) -> str:
    return re.search(r'^TEMPLATE """(.*?)"""$', modelfile_text, re.S | re.M).group(1)


conversations = st.builds(
    lambda system, turns, text: ([{"role": "system", "content": system}] if system else [])
    + [{"role": "user" if i % 2 == 0 else "assistant", "content": text[i % len(text)]} for i in range(2 * turns + 1)],
    st.one_of(st.none(), st.text(min_size=1, max_size=30)),
    st.integers(0, 2),
    st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(conversation=conversations)
def test_the_modelfile_template_renders_any_conversation_like_the_students_template(smol_tokenizer, conversation):
    """SmolLM2's own template (which adds a default system message) and one Ollama's map does not know."""
    from trainer.modelfile import modelfile, render_go_template

    for tokenizer in (smol_tokenizer, with_template(smol_tokenizer, UNKNOWN_TEMPLATE)):
        template = template_of(modelfile(tokenizer, "./student.gguf"))
        want = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        assert render_go_template(template, conversation) == want


def test_an_unknown_template_gets_its_own_stop_and_a_quoted_literal(smol_tokenizer):
    from trainer.modelfile import modelfile

    text = modelfile(with_template(smol_tokenizer, UNKNOWN_TEMPLATE), "./merged")
    assert 'PARAMETER stop "<END>"' in text and "FROM ./merged" in text
    assert '{{ "### Ask {{\\n" }}' in template_of(text)  # a literal "{{" cannot stand bare in a Go template


def test_a_template_that_cannot_be_translated_is_refused_before_anything_is_written(smol_tokenizer):
    from trainer.errors import TrainError
    from trainer.modelfile import modelfile

    with pytest.raises(TrainError, match="write TEMPLATE by hand"):
        modelfile(with_template(smol_tokenizer, FOLDED_TEMPLATE), "./merged")
