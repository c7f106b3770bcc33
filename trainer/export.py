"""`shake student export`: the LoRA adapter, the merged model as a Hugging Face directory, and with
`--ollama` a Modelfile next to it (`ollama create NAME -f Modelfile` imports the safetensors)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from trainer.errors import TrainError
from trainer.evaluate import adapter_dir, load_trained


CHATML_TEMPLATE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def modelfile(tokenizer) -> str:
    """An Ollama Modelfile for the merged model: chat template (ChatML) and stop token."""
    template = tokenizer.chat_template or ""
    if "<|im_start|>" not in template:
        raise TrainError("--ollama writes ChatML templates only, and this student's chat template is not ChatML")
    eos = tokenizer.eos_token or "<|im_end|>"
    return (
        "# ollama create my-student -f Modelfile\n"
        "FROM ./merged\n"
        f'TEMPLATE """{CHATML_TEMPLATE}"""\n'
        f'PARAMETER stop "{eos}"\n'
        "PARAMETER temperature 0.2\n"
    )


def export_student(run_dir: Path, out: Path, *, ollama: bool = False) -> dict[str, Path]:
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty; choose a new directory for the export")
    model, tokenizer, _, _ = load_trained(run_dir, device=torch.device("cpu"))
    ollama_file = modelfile(tokenizer) if ollama else None  # refuse before writing anything
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(adapter_dir(run_dir), out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "merged")
    paths = {"adapter": out / "adapter", "merged": out / "merged"}
    if ollama_file is not None:
        (out / "Modelfile").write_text(ollama_file)
        paths["modelfile"] = out / "Modelfile"
    return paths
