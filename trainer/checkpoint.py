"""Checkpoints that are either complete or ignored.

A checkpoint is written into `checkpoints/.step-NNNNNN.tmp/` (adapter, optimizer, scheduler, RNG
states, trainer state with the snapshot hash), gets a `COMPLETE` marker, and only then is renamed to
`checkpoints/step-NNNNNN/`. A directory without the marker (a kill mid-save) is skipped with a
warning; resume takes the newest complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.store.atomic import atomic_write_text, fsync_dir

MARKER = "COMPLETE"


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(run_dir: Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(tmp / "adapter")
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
        tmp / "trainer.pt",
    )
    atomic_write_text(tmp / "state.json", json.dumps({**state, "step": step}, indent=1))
    for path in tmp.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    atomic_write_text(tmp / MARKER, "ok\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(root)
    return final


def complete_checkpoints(run_dir: Path) -> list[Checkpoint]:
    root = Path(run_dir) / "checkpoints"
    found = []
    if not root.exists():
        return found
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.name.startswith("step-"):
            if path.name.endswith(".tmp"):
                warnings.warn(f"skipping the partial checkpoint {path} (the save did not finish)", stacklevel=2)
            continue
        if not (path / MARKER).exists():
            warnings.warn(f"skipping the partial checkpoint {path} (no {MARKER} marker)", stacklevel=2)
            continue
        state = json.loads((path / "state.json").read_text())
        found.append(Checkpoint(path, int(state["step"]), state))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def load_adapter_weights(model, adapter_dir: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)


def restore(checkpoint: Checkpoint, model, optimizer, scheduler) -> None:
    load_adapter_weights(model, checkpoint.path / "adapter")
    blob = torch.load(checkpoint.path / "trainer.pt", weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
