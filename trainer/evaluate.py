"""`shake eval`: the student's loss parts on held-out rows and, optionally, whether its scripts run.

Generation replays the held-out worker steps, one per step (a step's rows share their prompt: the
worker's first-cycle instruction with the script of that moment; the planner's, lead's and analyzer's
side-chain rows are no steps), greedily, on the engine's student backend (llama.cpp where the student
converts, else transformers: `generated_on` in the report says which and why); each answer is parsed
like a worker's and run in the engine's runner.
The pass rate is the share of held-out steps whose answer parses and runs without error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from engine.agents.parsing import parse_worker_output
from engine.config import RunnerConfig
from engine.errors import OutputFormatError
from engine.execution import run_script
from engine.store import Snapshot
from engine.store.atomic import atomic_write_text
from engine.student import runs
from trainer.data import build_examples, collate, held_out_steps, prompt_ids, split
from trainer.errors import TrainError
from trainer.forward import batch_loss
from engine.teachers.base import SamplingParams
from trainer.trained import generating_student, load_trained


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
        student = generating_student(run_dir, Path(run_dir).name, [prompt_ids(tokenizer, s.messages) for s in steps],
                                     max_new_tokens)
        greedy = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, top_logprobs=0)
        passed = 0
        for step in steps:
            text = student.generate(step.messages, greedy).text
            try:
                script = parse_worker_output(text).script
            except OutputFormatError:
                continue
            if run_script(script, runner or RunnerConfig()).ok:
                passed += 1
        result["held_out_steps"] = len(steps)
        result["generated"] = len(steps)
        result["pass_rate"] = passed / len(steps) if steps else None
        result["generated_on"] = student.serving.line()
        student.close()
    atomic_write_text(runs.RunDir(Path(run_dir)).eval_report, json.dumps(result, indent=1))
    return result
