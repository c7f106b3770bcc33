"""The training recipe's configuration: every field typed, documented and shown by `shake train --help`."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field


def opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    # -- run ---------------------------------------------------------------------------------
    name: str = opt("", "run name; the run lives in DATA/runs/NAME (default: a timestamp)")
    run_dir: str = opt("", "explicit run directory (overrides --name)")
    resume: bool = opt(False, "continue the run from its newest complete checkpoint")
    seed: int = opt(0, "seed for data order, LoRA init and dropout")
    init_from: str = opt("", "start from a previous run (name or directory: its adapter), an exported adapter "
                             "or a merged model directory, instead of the base student")
    # -- data --------------------------------------------------------------------------------
    eval_fraction: float = opt(0.1, "share of steps held out for `shake eval` (whole steps, by a hash of the step)")
    max_length: int = opt(2048, "prompt + response tokens; longer rows are skipped with a warning")
    skip_bad: bool = opt(False, "leave out data files that are not valid session files (each is named) instead of "
                         "stopping")
    # -- student -----------------------------------------------------------------------------
    student: str = opt("", "Hugging Face model directory or .gguf file (default: bundled SmolLM2-135M-Instruct)")
    load_in_4bit: str = opt("auto", "nf4 4-bit base (QLoRA): auto = on for CUDA, off for CPU; or on / off")
    device: str = opt("auto", "auto, cpu or cuda")
    precision: str = opt("auto", "auto (bf16 on a GPU with bf16 and on a CPU with AMX or AVX-512-BF16, else fp32), "
                                 "fp32, bf16 or fp16: the frozen base's dtype; LoRA and optimizer stay fp32")
    # -- LoRA --------------------------------------------------------------------------------
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = opt(0.05, "dropout on the LoRA input")
    lora_targets: str = opt("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "comma-separated module names")
    # -- loss --------------------------------------------------------------------------------
    lam: float = opt(0.1, "λ: weight of the odds-ratio term (ORPO's beta)")
    kd_divergence: str = opt("forward", "forward (KL(p||q)), reverse (KL(q||p)) or jsd")
    jsd_beta: float = opt(0.5, "mixture weight for --kd-divergence jsd")
    kd_temperature: float = opt(1.0, "softening temperature for the KD term (scaled by T^2)")
    kd_renormalize: bool = opt(False, "renormalize over the teacher's top-k instead of keeping a tail bucket")
    no_kd: bool = opt(False, "ignore teacher log-probabilities: hard-label NLL + λ·OR (plain ORPO)")
    kd_other_prompt: bool = opt(False, "also use soft labels a teacher computed under another prompt than the row's "
                                "(a later cycle's instruction; Ollama and OpenAI teachers cannot re-score): by "
                                "default such rows train on the NLL of the chosen")
    soft_labels: str = opt("prompt", "which soft labels KD uses: prompt (the teacher's under the row's prompt) or "
                           "context (where the chosen came from a later cycle, the generator's own under that "
                           "cycle's messages, with the error or the feedback: context distillation; else prompt's)")
    model_chosen_only: bool = opt(False, "leave out the steps whose chosen the user wrote (their own edit or fix): "
                                  "train on the teachers' answers only")
    loss_chunk: int = opt(256, "response positions per chunk when computing full-vocabulary logits")
    # -- optimisation ------------------------------------------------------------------------
    lr: float = opt(2e-4, "peak learning rate (AdamW)")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    schedule: str = opt("cosine", "cosine, linear or constant, after warm-up")
    warmup_steps: int = opt(2, "linear warm-up steps")
    batch_size: int = opt(2, "rows per micro-batch (each adds its chosen and, if any, its rejected)")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    max_steps: int = opt(0, "optimizer steps; 0: derive from --epochs")
    epochs: float = opt(1.0, "passes over the training rows when --max-steps is 0")
    max_grad_norm: float = opt(1.0, "gradient clipping")
    checkpoint_every: int = opt(50, "save a checkpoint every N steps (and at the end)")
    gradient_checkpointing: bool = opt(True, "recompute decoder activations in the backward pass (less memory)")

    def validate(self) -> None:
        from trainer.errors import TrainError

        for f in dataclasses.fields(self):  # nan passes every comparison below as False, inf most of them
            value = getattr(self, f.name)
            if f.type in ("float", float) and not math.isfinite(value):
                raise TrainError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
        checks = [
            (0 <= self.eval_fraction < 1, "--eval-fraction must be in [0, 1)"),
            (self.max_length >= 16, "--max-length must be at least 16"),
            (self.load_in_4bit in ("auto", "on", "off"), "--load-in-4bit is auto, on or off"),
            (self.device in ("auto", "cpu", "cuda"), "--device is auto, cpu or cuda"),
            (self.soft_labels in ("prompt", "context"), "--soft-labels is prompt or context"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "--precision is auto, fp32, bf16 or fp16"),
            (self.lora_r > 0 and self.lora_alpha > 0, "--lora-r and --lora-alpha must be positive"),
            (0 <= self.lora_dropout < 1, "--lora-dropout must be in [0, 1)"),
            (self.lam >= 0, "--lam must be >= 0"),
            (self.kd_divergence in ("forward", "reverse", "jsd"), "--kd-divergence is forward, reverse or jsd"),
            (0 < self.jsd_beta < 1, "--jsd-beta must be in (0, 1)"),
            (self.kd_temperature > 0, "--kd-temperature must be > 0"),
            (self.lr > 0, "--lr must be > 0"),
            (self.weight_decay >= 0, "--weight-decay must be >= 0"),
            (self.warmup_steps >= 0, "--warmup-steps must be >= 0"),
            (self.max_grad_norm > 0, "--max-grad-norm must be > 0"),
            (self.schedule in ("cosine", "linear", "constant"), "--schedule is cosine, linear or constant"),
            (self.batch_size > 0 and self.grad_accum > 0, "--batch-size and --grad-accum must be positive"),
            (self.max_steps >= 0 and self.epochs > 0, "--max-steps >= 0 and --epochs > 0"),
            (self.checkpoint_every > 0, "--checkpoint-every must be positive"),
            (self.loss_chunk > 0, "--loss-chunk must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def add_arguments(parser) -> None:
    """One flag per field, with its default in the help text."""
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default!r})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def from_args(args) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name, None) is not None}
    return TrainConfig(**values)
