"""Load the student (a GGUF file or a Hugging Face directory), with 4-bit base and LoRA as configured."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.errors import TrainError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def use_4bit(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.load_in_4bit == "auto":
        return device.type == "cuda"
    return cfg.load_in_4bit == "on"


def student_source(student: str) -> tuple[str, dict]:
    """(directory, extra from_pretrained kwargs) for a student spec."""
    if not student:
        from engine.teachers.embedded import default_gguf_path

        gguf = default_gguf_path()
        return str(gguf.parent), {"gguf_file": gguf.name}
    path = Path(student).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise TrainError(f"no student GGUF file at {path}")
        return str(path.parent), {"gguf_file": path.name}
    if not path.is_dir():
        raise TrainError(f"no student model at {path}: give a Hugging Face model directory or a .gguf file")
    if not (path / "config.json").exists():
        raise TrainError(f"{path} has no config.json; it is not a Hugging Face model directory")
    return str(path), {}


def load_tokenizer(student: str):
    from transformers import AutoTokenizer

    source, extra = student_source(student)
    tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise TrainError(f"the student's tokenizer at {source} has no chat template; use an instruct model")
    return tokenizer


def load_base_model(student: str, *, device: torch.device, four_bit: bool):
    from transformers import AutoModelForCausalLM

    source, extra = student_source(student)
    kwargs: dict = {"dtype": torch.float32}
    if four_bit:
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if device.type == "cuda" else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **extra)
    if not four_bit:
        model.to(device)
    return model


def add_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    targets = [t.strip() for t in cfg.lora_targets.split(",") if t.strip()]
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise TrainError(f"--lora-targets names modules the student does not have: {', '.join(missing)}")
    for p in model.parameters():
        p.requires_grad_(False)
    config = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=targets, task_type="CAUSAL_LM", bias="none",
    )
    model = get_peft_model(model, config)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def decoder_and_head(model):
    """The transformer body (hidden states out) and the LM head of a (PEFT-wrapped) causal LM."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix, None) or base.model
    return body, base.get_output_embeddings()
