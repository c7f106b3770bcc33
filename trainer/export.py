"""`shake student export`: the LoRA adapter, and the merged model as a Hugging Face directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from trainer.errors import TrainError
from trainer.evaluate import adapter_dir, load_trained


def export_student(run_dir: Path, out: Path) -> dict[str, Path]:
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty; choose a new directory for the export")
    model, tokenizer, _, _ = load_trained(run_dir, device=torch.device("cpu"))
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(adapter_dir(run_dir), out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "merged")
    return {"adapter": out / "adapter", "merged": out / "merged"}
