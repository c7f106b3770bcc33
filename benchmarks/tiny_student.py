"""A tiny random-weight student for the pipeline checks: the default student's tokenizer and chat
template on a 2-layer Llama of width 64 (SmolLM2 is a Llama), so that every stage a real student goes
through (tokenize, align, train, merge, GGUF export, llama.cpp) runs in seconds. Its answers are noise:
the `--quick` profiles and the tests that use it check that the pipeline runs, never a figure.
"""

from __future__ import annotations

from pathlib import Path


def tiny_student(dest: Path, tokenizer=None) -> Path:
    """A Hugging Face model directory at `dest` (seeded: the same weights every time)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if tokenizer is None:
        from engine.student.loader import load_tokenizer

        tokenizer = load_tokenizer("")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    dest = Path(dest)
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def tiny_student_gguf(dest: Path) -> Path:
    """The tiny student as a GGUF file (its tokenizer copied from the bundled GGUF): a `--student` spec
    that loads, trains and exports like the default student, bundled GGUF included."""
    import shutil

    from engine.teachers.embedded import default_gguf_path
    from trainer.gguf_export import export_gguf

    dest = Path(dest)
    hf = tiny_student(dest.with_name(dest.name + ".hf"))
    try:
        return export_gguf(hf, dest, default_gguf_path())
    finally:
        shutil.rmtree(hf, ignore_errors=True)


def lora_adapter(student: str, dest: Path, *, r: int = 16, trained: bool = False) -> Path:
    """A PEFT LoRA adapter over `student` (a `--student` spec: "" is the bundled GGUF) laid out as a
    `shake train` run saves one, on the trainer's default target modules, at `dest` (seeded).

    trained=False: PEFT's own initialization (B = 0), so the student answers like its base at a trained
    adapter's cost per token (the speed benchmarks); trained=True: every A and B random, so the adapter
    visibly changes the answers (the checks that it is applied, and applied right)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from engine.student.loader import load_base_model
    from trainer.config import TrainConfig

    torch.manual_seed(0)
    model = load_base_model(student, device=torch.device("cpu"))
    targets = [t.strip() for t in TrainConfig().lora_targets.split(",")]
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, task_type="CAUSAL_LM", bias="none")
    model = get_peft_model(model, config)  # A random, B = 0
    if trained:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.5 / r ** 0.5)
    model.save_pretrained(dest)
    return Path(dest)
