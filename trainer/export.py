"""`shake student export`: the LoRA adapter, the merged model as a Hugging Face directory, with
`--gguf` an F32 GGUF for llama.cpp (the embedded backend), and with `--ollama` a Modelfile next to
them (`ollama create NAME -f Modelfile` imports the GGUF, or the safetensors without `--gguf`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from engine.student.loader import load_student, resolve_student
from engine.student.precision import FP32
from engine.student.runs import RunDir
from trainer.errors import TrainError


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
    run = RunDir(Path(run_dir))
    tokenizer_gguf = source_gguf(run.student) if gguf else None  # refuse before writing anything
    # merged in fp32: the export's weights are exact, whatever precision the run trained in
    student = load_student(resolve_student(run.path), device=torch.device("cpu"), precision=FP32, merge=True)
    merged, tokenizer = student.model, student.tokenizer
    ollama_file = modelfile(tokenizer, "./student.gguf" if gguf else "./merged") if ollama else None
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(student.source.adapter, out / "adapter")
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
