"""A finished (or checkpointed) training run found and loaded back: by name or directory, its adapter,
the model with its LoRA layers in the run's precision. `shake eval`, `shake student export`, the
scoreboard and `--init-from` start here; it imports nothing of training itself.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.errors import StudentError
from engine.student import runs
from engine.student.loader import load_student, resolve_device, resolve_student
from engine.student.precision import Precision, resolve_precision
from trainer.config import TrainConfig
from trainer.errors import TrainError


def resolve_run(run: str, data_dir: Path) -> Path:
    """A run given by name (under DATA/runs) or by directory (`engine.student.runs` owns the layout)."""
    try:
        return runs.resolve_run(run, data_dir).path
    except StudentError as err:
        raise TrainError(str(err)) from None


def adapter_dir(run_dir: Path) -> Path:
    """The run's final adapter, else its newest complete checkpoint's."""
    found = runs.RunDir(Path(run_dir)).final_adapter()
    if found is None:
        raise TrainError(f"{run_dir} has no adapter yet (no finished run and no complete checkpoint)")
    return found[0]


def load_trained(run_dir: Path, *, device: torch.device | None = None, precision: Precision | None = None):
    """(model with its LoRA layers, tokenizer, the run's TrainConfig, device), in eval mode.

    The precision defaults to the run's own (`--precision`), so that the loss is computed as the
    trainer computed it; pass `FP32` for exact logits (export checks, GGUF comparisons)."""
    cfg = TrainConfig.from_dict(runs.RunDir(Path(run_dir)).settings())
    device = device or resolve_device(cfg.device)
    precision = precision or resolve_precision(cfg.precision, device.type)
    student = load_student(resolve_student(Path(run_dir)), device=device, merge=False, precision=precision)
    return student.model, student.tokenizer, cfg, device


def generating_student(model: Path | str, name: str, prompts: list[list[int]], max_new_tokens: int):
    """The engine's student backend on `model` (a run, or a base's GGUF file or directory), with a context
    long enough for the longest of `prompts` plus `max_new_tokens`: what `shake eval --generate` and the
    scoreboard decode with, on llama.cpp where the student converts (the embedded teacher's speed), else
    on transformers, `serving` saying which and why (engine/teachers/student.py)."""
    from engine.config import TeacherConfig
    from engine.teachers.student import StudentTeacher

    n_ctx = max([4096] + [len(p) + max_new_tokens + 16 for p in prompts])
    student = StudentTeacher(TeacherConfig(name=name, backend="student", model=str(model), n_ctx=n_ctx))
    student.health()
    return student
