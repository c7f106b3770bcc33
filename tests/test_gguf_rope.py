"""GGUF export keeps the student's RoPE base: transformers 5 stores it under `rope_parameters`
(SmolLM2-135M uses 100000), and an export that wrote the default 10000 scored every position wrong."""

from __future__ import annotations

import numpy as np
import torch

from engine.config import TeacherConfig


def test_gguf_export_keeps_a_non_default_rope_base(smol_tokenizer, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path
    from engine.teachers.student import StudentTeacher
    from trainer.gguf_export import export_gguf

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smol_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id, rope_theta=100000.0,
        initializer_range=0.5,  # sharp attention, so that positions (and RoPE) matter
    )
    model_dir = tmp_path / "student"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    smol_tokenizer.save_pretrained(model_dir)
    out = export_gguf(model_dir, tmp_path / "student.gguf", default_gguf_path())
    messages = [{"role": "user", "content": "Write print(1) and explain it in a few words, please."}]
    text = "print(1) prints the number one; nothing else happens in this little script.\n" * 3
    a = EmbeddedTeacher(TeacherConfig(name="g", model=str(out), n_ctx=512)).score(messages, text, top_logprobs=3)
    b = StudentTeacher(TeacherConfig(name="h", backend="student", model=str(model_dir), precision="fp32")).score(messages, text, top_logprobs=3)
    assert a.token_ids.tolist() == b.token_ids.tolist()
    # large random weights round more in F32 matmuls than a trained model's (2e-3 in the tiny-student test);
    # with RoPE at the default base instead, the difference is above 10 nats
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=0.1)
    assert np.abs(a.logprobs - b.logprobs).mean() < 0.02
