"""`shake student export`: the LoRA adapter, the merged model as a Hugging Face directory, with
`--gguf` an F32 GGUF for llama.cpp (the embedded backend), and with `--ollama` a Modelfile next to
them (`ollama create NAME -f Modelfile` imports the GGUF, or the safetensors without `--gguf`)."""

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


def modelfile(tokenizer, source: str = "./merged") -> str:
    """An Ollama Modelfile for the merged model: chat template (ChatML) and stop token."""
    template = tokenizer.chat_template or ""
    if "<|im_start|>" not in template:
        raise TrainError("--ollama writes ChatML templates only, and this student's chat template is not ChatML")
    eos = tokenizer.eos_token or "<|im_end|>"
    return (
        "# ollama create my-student -f Modelfile\n"
        f"FROM {source}\n"
        f'TEMPLATE """{CHATML_TEMPLATE}"""\n'
        f'PARAMETER stop "{eos}"\n'
        "PARAMETER temperature 0.2\n"
    )


def source_gguf(student: str) -> Path:
    """The GGUF the run's student was loaded from (its tokenizer goes into an exported GGUF)."""
    if not student:
        from engine.teachers.embedded import default_gguf_path

        return default_gguf_path()
    if student.endswith(".gguf"):
        return Path(student).expanduser()
    raise TrainError("--gguf needs a student that was loaded from a .gguf file (its tokenizer is copied from it); "
                     "this run's student is a Hugging Face directory: use llama.cpp's convert_hf_to_gguf.py")


def export_student(run_dir: Path, out: Path, *, ollama: bool = False, gguf: bool = False) -> dict[str, Path]:
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty; choose a new directory for the export")
    model, tokenizer, cfg, _ = load_trained(run_dir, device=torch.device("cpu"))
    tokenizer_gguf = source_gguf(cfg.student) if gguf else None  # refuse before writing anything
    ollama_file = modelfile(tokenizer, "./student.gguf" if gguf else "./merged") if ollama else None
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(adapter_dir(run_dir), out / "adapter")
    merged = model.merge_and_unload()
    # A base loaded from a GGUF keeps transformers' "gguf quantizer", which refuses to save; its
    # weights are already dequantized to float32, so the merged model saves as a plain one.
    merged.hf_quantizer = None
    if getattr(merged.config, "quantization_config", None) is not None:
        del merged.config.quantization_config  # else loading the merged directory would look for the GGUF
    merged.save_pretrained(out / "merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "merged")
    paths = {"adapter": out / "adapter", "merged": out / "merged"}
    if tokenizer_gguf is not None:
        from trainer.gguf_export import export_gguf

        paths["gguf"] = export_gguf(out / "merged", out / "student.gguf", tokenizer_gguf)
    if ollama_file is not None:
        (out / "Modelfile").write_text(ollama_file)
        paths["modelfile"] = out / "Modelfile"
    return paths
