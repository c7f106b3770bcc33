"""The student as the trainer builds it: the frozen base from the engine's loader (in the run's
precision, or nf4 for QLoRA) with fp32 LoRA layers on top.

Precision lives in the model itself: the frozen base's dtype is the compute dtype. `compute_context`
turns autocast on for a 16-bit base, so that the LoRA products (fp32 weights) run in 16 bits with
the base's matmuls, and the loss turns the head's logits back to fp32 (trainer/loss.py).
"""

from __future__ import annotations

import contextlib

import torch

from engine.student.loader import load_base_model, load_tokenizer, resolve_device  # noqa: F401 (the trainer's entry points)
from trainer.config import TrainConfig
from trainer.errors import TrainError


def use_4bit(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.load_in_4bit == "auto":
        return device.type == "cuda"
    return cfg.load_in_4bit == "on"


def compute_dtype(model) -> torch.dtype:
    """The dtype the (frozen) base computes in: its input embeddings' dtype, also under nf4."""
    return model.get_input_embeddings().weight.dtype


def compute_context(model):
    """Autocast to the base's dtype when it is 16-bit; nothing for fp32."""
    dtype = compute_dtype(model)
    if dtype in (torch.bfloat16, torch.float16):
        return torch.autocast(model.get_input_embeddings().weight.device.type, dtype=dtype)
    return contextlib.nullcontext()


def add_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

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
    # autocast_adapter_dtype (PEFT's default): LoRA weights in fp32 whatever the base's dtype
    model = get_peft_model(model, config, autocast_adapter_dtype=True)
    if compute_dtype(model) != torch.float32:
        # PEFT would cast each LoRA input to fp32 (a copy of every activation, and another one back
        # under autocast); autocast runs the product in the base's dtype from the fp32 weights instead.
        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                module.cast_input_dtype_enabled = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def decoder_and_head(model):
    """The transformer body (hidden states out) and the LM head of a (PEFT-wrapped) causal LM."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix, None) or base.model
    return body, base.get_output_embeddings()
