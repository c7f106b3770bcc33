"""`shake eval`: the student's loss parts on held-out rows and, optionally, whether its scripts run.

Generation uses the held-out rows' prompts (the worker's first-cycle instruction with the script of
that moment); each answer is parsed like a worker's and run in the engine's runner. The pass rate is
the share of held-out rows whose answer parses and runs without error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from engine.agents.parsing import parse_worker_output
from engine.config import RunnerConfig
from engine.errors import OutputFormatError
from engine.runner import run_script
from engine.store import Snapshot
from engine.store.atomic import atomic_write_text
from engine.student.loader import load_student, resolve_device, resolve_student
from engine.student.precision import resolve_precision
from engine.student.runs import RunDir
from trainer.config import TrainConfig
from trainer.data import build_examples, collate, prompt_ids, split
from trainer.errors import TrainError
from trainer.recipe import batch_loss


@torch.no_grad()
def evaluate(run_dir: Path, *, generate: bool = False, max_new_tokens: int = 512, batch_size: int = 2,
             runner: RunnerConfig | None = None) -> dict:
    run = RunDir(Path(run_dir))
    cfg = TrainConfig.from_dict(run.settings())
    device = resolve_device(cfg.device)
    # the loss as the trainer computed it: the run's precision, the adapter kept as LoRA layers
    student = load_student(resolve_student(run.path), device=device, merge=False,
                           precision=resolve_precision(cfg.precision, device.type))
    model, tokenizer = student.model, student.tokenizer
    snapshot = Snapshot(run.snapshot)
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
        rows = {row["row_id"]: row for row in snapshot.rows}
        passed = 0
        for ex in held:
            messages = rows[ex.row_id]["prompt"]["messages"]
            ids = torch.tensor([prompt_ids(tokenizer, messages)], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            try:
                script = parse_worker_output(text).script
            except OutputFormatError:
                continue
            if run_script(script, runner or RunnerConfig()).ok:
                passed += 1
        result["generated"] = len(held)
        result["pass_rate"] = passed / len(held)
    atomic_write_text(run.eval_report, json.dumps(result, indent=1))
    return result
