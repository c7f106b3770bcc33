"""Checkpoints that are either complete or ignored.

A checkpoint is written into the run's partial-checkpoint directory (adapter, optimizer, scheduler,
grad scaler and RNG states, trainer state with the snapshot hash), gets the `COMPLETE` marker, and
only then is renamed to its final name. A directory without the marker (a kill mid-save) is skipped
with a warning; resume takes the newest complete one. The names and the discovery of complete
checkpoints belong to `engine.student.runs`; this module writes and restores their contents.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from engine.store.atomic import atomic_write_text, fsync_dir
from engine.student.runs import ADAPTER_WEIGHTS, CheckpointDir, CheckpointInfo, RunDir


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


def save_checkpoint(run: RunDir, step: int, model, optimizer, scheduler, scaler, state: dict) -> Path:
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    final = run.checkpoint(step)
    tmp = run.partial_checkpoint(step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    files = CheckpointDir(tmp)
    model.save_pretrained(files.adapter)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
         "rng": rng_state()},
        files.trainer_state,
    )
    atomic_write_text(files.state, json.dumps({**state, "step": step}, indent=1))
    for path in tmp.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    atomic_write_text(files.complete, "ok\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(run.checkpoints)
    return final


def load_adapter_weights(model, adapter_dir: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(Path(adapter_dir) / ADAPTER_WEIGHTS))
    set_peft_model_state_dict(model, weights)


def restore(checkpoint: CheckpointInfo, model, optimizer, scheduler, scaler) -> None:
    load_adapter_weights(model, checkpoint.adapter)
    blob = torch.load(checkpoint.trainer_state, weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    if blob.get("scaler"):  # checkpoints from before the scaler have none; an empty state means disabled
        scaler.load_state_dict(blob["scaler"])
    set_rng_state(blob["rng"])
