"""The student backend serves a trained student on llama.cpp (its base GGUF + the adapter as a GGUF
LoRA, engine/student/gguf_lora.py) where it converts, and on transformers, saying why, where it does
not; on either engine it stays a student (engine/session/soft_labels.py never lets it score)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from engine.config import TeacherConfig
from engine.errors import StudentError, TeacherError
from engine.session.soft_labels import can_score, is_student
from engine.student import converted as conv
from engine.teachers.base import SamplingParams
from engine.teachers.embedded import EmbeddedTeacher
from engine.teachers.student import LLAMA_CPP, TRANSFORMERS, StudentTeacher

MESSAGES = [{"role": "user", "content": "Write print(1)"}]
TEXT = "REASONING: one line.\n```python\nprint('hello world')\n```\n"
# the fixed prompt set of the greedy check: short, varied, one with a system message and one multi-turn
PROMPTS = [
    [{"role": "user", "content": "Write print(1)"}],
    [{"role": "user", "content": "Add a --width argument to this script:\n\nimport sys\nprint(sys.argv)\n"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rename x to total."}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c\nd"}],
    [{"role": "user", "content": "Fix the off-by-one: for i in range(1, len(xs)): print(xs[i])"}],
    [{"role": "user", "content": "Ünïcödé: добавь заголовок, 表头"}],
]
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    from benchmarks.tiny_student import tiny_student_gguf

    return tiny_student_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def adapter(tiny_gguf, tmp_path_factory):
    """A rank-4 adapter with random A and B on the tiny GGUF student: far from its base."""
    from benchmarks.tiny_student import lora_adapter

    return lora_adapter(str(tiny_gguf), tmp_path_factory.mktemp("adapter") / "adapter", r=4, trained=True)


def student(model, **kw) -> StudentTeacher:
    teacher = StudentTeacher(TeacherConfig(name="s", backend="student", model=str(model), n_ctx=512, **kw))
    teacher.health()
    return teacher


def test_a_gguf_students_adapter_is_served_on_llama_cpp_and_stays_a_student(adapter, tiny_gguf):
    cpp = student(adapter)
    assert cpp.serving.engine == LLAMA_CPP and cpp.serving.line() == "llama.cpp"
    gen = cpp.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=4, top_logprobs=3))
    # the student's identity, not the base GGUF's: a student never scores as a teacher
    assert gen.identity == cpp.identity and gen.identity.backend == "student" and gen.identity.quantization == "lora"
    assert gen.identity.model == adapter.name and gen.identity.digest
    assert is_student(cpp) and not can_score(cpp)
    assert gen.tokens and all(len(t.top) == 3 for t in gen.tokens)
    # the embedded teacher on the same GGUF gets its own llama.cpp model, without the student's adapter
    base = EmbeddedTeacher(TeacherConfig(name="b", model=str(tiny_gguf), n_ctx=512))
    with_lora = cpp.score(MESSAGES, TEXT, top_logprobs=0).logprobs
    without = base.score(MESSAGES, TEXT, top_logprobs=0).logprobs
    assert np.abs(with_lora - without).max() > 0.05  # measured 0.57: the adapter is applied


def test_llama_cpp_scores_like_transformers_with_the_adapter(adapter):
    cpp = student(adapter)
    hf = student(adapter, serve="transformers", precision="fp32")
    assert hf.serving == hf.serving.__class__(TRANSFORMERS, 'serve = "transformers"')
    a, b = cpp.score(MESSAGES, TEXT, top_logprobs=3), hf.score(MESSAGES, TEXT, top_logprobs=3)
    assert a.token_ids.tolist() == b.token_ids.tolist()
    # measured: max 8.8e-5 nats (the F16 KV cache); a q/k row permutation or a scale left out costs ~0.1-1
    assert np.abs(a.logprobs - b.logprobs).max() < 2e-3


def test_greedy_answers_match_the_transformers_path_on_a_fixed_prompt_set(adapter):
    """The agreement, stated as benchmarks/distill/students.py `match_check` states it: every prompt's
    greedy answer is the same token sequence on both engines (measured: 6 of 6, common prefix 1.0)."""
    cpp = student(adapter)
    hf = student(adapter, serve="transformers", precision="fp32")
    greedy = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, top_logprobs=0)
    same, shares = 0, []
    for messages in PROMPTS:
        a = [t.token_id for t in cpp.generate(messages, greedy).tokens]
        b = [t.token_id for t in hf.generate(messages, greedy).tokens]
        prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        shares.append(prefix / max(len(a), len(b), 1))
        same += a == b
    agreement = {"prompts": len(PROMPTS), "identical": same, "mean_common_prefix_share": sum(shares) / len(shares)}
    assert agreement == {"prompts": 6, "identical": 6, "mean_common_prefix_share": 1.0}, agreement


def test_a_student_that_does_not_convert_falls_back_to_transformers_and_says_why(tiny_student, tmp_path):
    hf_base = student(tiny_student)  # a Hugging Face directory: no GGUF for llama.cpp to load
    assert hf_base.serving.engine == TRANSFORMERS
    assert "not a GGUF file llama.cpp loads" in hf_base.serving.why
    assert hf_base.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=2)).identity.backend == "student"
    with pytest.raises(TeacherError, match='serve = "llama.cpp", but the student\'s weights are a merged Hugging Face'):
        student(tiny_student, serve="llama.cpp")


def test_an_adapter_llama_cpp_cannot_apply_is_refused_with_the_reason(adapter, tiny_gguf, tmp_path):
    from engine.student.gguf_lora import write_lora_gguf

    dora = tmp_path / "dora"
    dora.mkdir()
    for f in adapter.iterdir():
        (dora / f.name).write_bytes(f.read_bytes())
    config = json.loads((adapter / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(StudentError, match="DoRA"):
        write_lora_gguf(dora, tiny_gguf, tmp_path / "x.gguf")
    embeddings = tmp_path / "embeddings"
    embeddings.mkdir()
    (embeddings / "adapter_config.json").write_text(json.dumps(config))
    from safetensors.numpy import save_file

    save_file({"base_model.model.model.embed_tokens.lora_embedding_A": np.zeros((4, 8), np.float32)},
              str(embeddings / "adapter_model.safetensors"))
    with pytest.raises(StudentError, match="cannot apply: base_model.model.model.embed_tokens"):
        write_lora_gguf(embeddings, tiny_gguf, tmp_path / "y.gguf")


def test_the_adapters_gguf_is_written_once_per_adapter_and_base(adapter, tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("SHAKE_CACHE", str(tmp_path / "cache"))
    first = conv.lora_gguf(adapter, tiny_gguf)
    assert first.parent == conv.lora_entry(adapter, tiny_gguf) and (first.parent / conv.CONVERTED).exists()
    stamp = first.stat().st_mtime_ns
    assert conv.lora_gguf(adapter, tiny_gguf) == first and first.stat().st_mtime_ns == stamp  # not rewritten
    assert [p.name for p in (tmp_path / "cache" / conv.ADAPTERS).iterdir()] == [first.parent.name]
    changed = tmp_path / "changed"
    changed.mkdir()
    for f in adapter.iterdir():
        (changed / f.name).write_bytes(f.read_bytes())
    config = json.loads((changed / "adapter_config.json").read_text())
    (changed / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 1}))
    os.utime(changed / "adapter_config.json")
    assert conv.lora_entry(changed, tiny_gguf) != conv.lora_entry(adapter, tiny_gguf)


def test_eval_generate_decodes_a_gguf_run_on_llama_cpp_and_an_hf_run_on_transformers(tiny_gguf, tiny_student,
                                                                                     tmp_path):
    from dataset_factory import make_dataset

    from trainer.config import TrainConfig
    from trainer.evaluate import evaluate
    from trainer.recipe import train

    with pytest.MonkeyPatch.context() as mp:
        (tmp_path / "config.toml").write_text('[teachers.a]\nbackend = "embedded"\n[teachers.b]\nbackend = "embedded"\n'
                                              '[session]\nswitch_teacher_after = 9\n')
        mp.setenv("SHAKE_CONFIG", str(tmp_path / "config.toml"))
        mp.setenv("SHAKE_DATA", str(tmp_path / "data"))
        assert make_dataset(tmp_path / "data", tmp_path) == 12  # scripted teachers: quick
    reports = {}
    for name, base in (("gguf", str(tiny_gguf)), ("hf", tiny_student)):
        cfg = TrainConfig(student=base, max_steps=1, batch_size=2, lora_r=4, eval_fraction=0.5, max_length=1024,
                          run_dir=str(tmp_path / name))
        run = train(cfg, tmp_path / "data", progress=False, log=lambda m: None).run_dir
        reports[name] = evaluate(run, generate=True, max_new_tokens=4)
    assert reports["gguf"]["generated_on"] == "llama.cpp" and reports["gguf"]["generated"] >= 1
    assert reports["hf"]["generated_on"].startswith("transformers (not on llama.cpp: the student's weights are a "
                                                    "Hugging Face directory")
