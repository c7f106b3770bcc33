"""`shake train --init-from`: continue from a previous student instead of the base.

Three kinds of source, told apart by their files:

- a training run (name under DATA/runs or a directory): its final adapter, else its newest complete
  checkpoint; the new run trains the same LoRA adapter further on the same base, so the new adapter
  holds everything learnt so far and loads like any other run's;
- an exported adapter directory (`adapter_config.json`): the same;
- a merged model directory (`config.json`, no snapshot): it becomes the new run's base student and
  a fresh adapter is trained on top.

An adapter only continues on the base it was trained on and with the same LoRA shape; anything else
is refused with what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.student.loader import HF_CONFIG
from engine.student.runs import ADAPTER_CONFIG, RunDir
from trainer.config import TrainConfig
from trainer.errors import TrainError
from trainer.trained import adapter_dir, resolve_run


@dataclass(frozen=True)
class InitSource:
    adapter: Path | None  # LoRA weights to start from
    student: str  # the base student the new run loads


def resolve_init(cfg: TrainConfig, data_dir: Path) -> InitSource | None:
    if not cfg.init_from:
        return None
    path = Path(cfg.init_from).expanduser()
    if not path.is_dir():
        path = resolve_run(cfg.init_from, data_dir)
    run = RunDir(path)
    if run.started and run.snapshot.exists():  # a training run
        previous = TrainConfig.from_dict(run.settings())
        _same_shape(cfg, previous.student, previous.lora_r, previous.lora_targets, path)
        return InitSource(adapter_dir(path), cfg.student)
    if (path / ADAPTER_CONFIG).exists():
        saved = json.loads((path / ADAPTER_CONFIG).read_text())
        targets = saved.get("target_modules") or []
        _same_shape(cfg, None, saved.get("r"), ",".join(sorted(targets)) if isinstance(targets, list) else targets, path)
        return InitSource(path, cfg.student)
    if (path / HF_CONFIG).exists():  # a merged model: a Hugging Face model directory
        return InitSource(None, str(path))
    raise TrainError(f"--init-from {cfg.init_from}: {path} is no training run, adapter or merged model directory")


def _same_shape(cfg: TrainConfig, student: str | None, r, targets: str, path: Path) -> None:
    if student is not None and student != cfg.student:
        raise TrainError(f"--init-from {path} was trained on the student {student or '(bundled default)'!r}, "
                         f"this run's is {cfg.student or '(bundled default)'!r}; pass the same --student")
    mine = ",".join(sorted(t.strip() for t in cfg.lora_targets.split(",") if t.strip()))
    theirs = ",".join(sorted(t.strip() for t in str(targets).split(",") if t.strip()))
    if r != cfg.lora_r or mine != theirs:
        raise TrainError(f"--init-from {path} has a LoRA adapter of rank {r} on {theirs}; this run asks for rank "
                         f"{cfg.lora_r} on {mine}: pass the same --lora-r and --lora-targets")
