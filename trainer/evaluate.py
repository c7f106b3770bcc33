"""`shake eval`: the student's loss parts on held-out rows and, optionally, whether its scripts run.

Generation replays the held-out worker steps, one per step (a step's rows share their prompt: the
worker's first-cycle instruction with the script of that moment; the planner's, lead's and analyzer's
side-chain rows are no steps); each answer is parsed like a worker's and run in the engine's runner.
The pass rate is the share of held-out steps whose answer parses and runs without error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from engine.agents.parsing import parse_worker_output
from engine.config import RunnerConfig
from engine.errors import OutputFormatError, StudentError
from engine.execution import run_script
from engine.store import Snapshot
from engine.store.atomic import atomic_write_text
from engine.student import runs
from engine.student.loader import load_student, resolve_device, resolve_student
from engine.student.precision import Precision, resolve_precision
from trainer.config import TrainConfig
from trainer.data import build_examples, collate, held_out_steps, prompt_ids, split
from trainer.errors import TrainError
from trainer.recipe import batch_loss


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


@torch.no_grad()
def evaluate(run_dir: Path, *, generate: bool = False, max_new_tokens: int = 512, batch_size: int = 2,
             runner: RunnerConfig | None = None) -> dict:
    model, tokenizer, cfg, device = load_trained(run_dir)
    snapshot = Snapshot(runs.RunDir(Path(run_dir)).snapshot)
    examples, _ = build_examples(snapshot, tokenizer, cfg)
    _, held = split(examples, cfg.eval_fraction)
    if not held:
        raise TrainError("this run has no held-out rows; train with a larger --eval-fraction or more rows")
    sums: dict[str, list[float]] = {}
    for i in range(0, len(held), batch_size):
        parts = batch_loss(model, collate(held[i : i + batch_size], tokenizer.pad_token_id).to(device), cfg)
        for key, value in parts.as_dict().items():
            if isinstance(value, float) and not math.isnan(value):
                sums.setdefault(key, []).append(value)
    result: dict = {"held_out_rows": len(held), **{k: sum(v) / len(v) for k, v in sums.items()}}
    if generate:
        steps = held_out_steps(snapshot.rows, held)
        passed = 0
        for step in steps:
            ids = torch.tensor([prompt_ids(tokenizer, step.messages)], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            try:
                script = parse_worker_output(text).script
            except OutputFormatError:
                continue
            if run_script(script, runner or RunnerConfig()).ok:
                passed += 1
        result["held_out_steps"] = len(steps)
        result["generated"] = len(steps)
        result["pass_rate"] = passed / len(steps) if steps else None
    atomic_write_text(runs.RunDir(Path(run_dir)).eval_report, json.dumps(result, indent=1))
    return result
