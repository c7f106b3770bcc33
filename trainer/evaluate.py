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
from engine.errors import OutputFormatError
from engine.execution import run_script
from engine.store import Snapshot
from engine.store.atomic import atomic_write_text
from trainer.config import TrainConfig
from trainer.data import build_examples, collate, held_out_steps, prompt_ids, split
from trainer.errors import TrainError
from trainer.recipe import batch_loss
from trainer.student import load_base_model, load_tokenizer, resolve_device


def resolve_run(run: str, data_dir: Path) -> Path:
    path = Path(run).expanduser()
    if path.is_dir():
        return path
    candidate = Path(data_dir) / "runs" / run
    if candidate.is_dir():
        return candidate
    runs = sorted(p.name for p in (Path(data_dir) / "runs").glob("*")) if (Path(data_dir) / "runs").exists() else []
    raise TrainError(f"no training run '{run}' (runs in {data_dir}/runs: {', '.join(runs) or 'none'})")


def adapter_dir(run_dir: Path) -> Path:
    if (run_dir / "adapter" / "adapter_config.json").exists():
        return run_dir / "adapter"
    from trainer.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise TrainError(f"{run_dir} has no adapter yet (no finished run and no complete checkpoint)")
    return ckpt.path / "adapter"


def load_trained(run_dir: Path, *, device: torch.device | None = None):
    from peft import PeftModel

    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    device = device or resolve_device(cfg.device)
    tokenizer = load_tokenizer(cfg.student)
    base = load_base_model(cfg.student, device=device, four_bit=False)
    model = PeftModel.from_pretrained(base, str(adapter_dir(run_dir)))
    model.to(device).eval()
    return model, tokenizer, cfg, device


@torch.no_grad()
def evaluate(run_dir: Path, *, generate: bool = False, max_new_tokens: int = 512, batch_size: int = 2,
             runner: RunnerConfig | None = None) -> dict:
    model, tokenizer, cfg, device = load_trained(run_dir)
    snapshot = Snapshot(run_dir / "snapshot")
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
    atomic_write_text(run_dir / "eval.json", json.dumps(result, indent=1))
    return result
