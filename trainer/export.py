"""`shake student export`: the LoRA adapter, the merged model as a Hugging Face directory, with
`--gguf` an F32 GGUF for llama.cpp (the embedded backend), and with `--ollama` a Modelfile next to
them (`ollama create NAME -f Modelfile` imports the GGUF, or the safetensors without `--gguf`).

Everything that can be refused (a non-empty target, a student without a source GGUF, a chat template
that has no faithful Ollama translation) is refused before anything is written. The GGUF is checked
after it is written: llama.cpp must tokenize a probe conversation like the student's tokenizer and
score it like the merged model does (`GGUF_TOLERANCE`), so an export that loads but computes
something else never reaches a user.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from engine.student.precision import FP32
from trainer.errors import TrainError
from trainer.trained import adapter_dir, load_trained
from trainer.modelfile import modelfile


@dataclass(frozen=True)
class ExportedStudent:
    adapter: Path
    merged: Path
    gguf: Path | None = None
    gguf_max_diff: float | None = None  # largest |log-prob difference| between llama.cpp and transformers
    modelfile: Path | None = None

    def lines(self) -> list[str]:
        """One line per file written, for the command's output."""
        out = [f"adapter: {self.adapter}", f"merged: {self.merged}"]
        if self.gguf is not None:
            out.append(f"gguf: {self.gguf} (llama.cpp scores match the merged model within {self.gguf_max_diff:.1e} nats)")
        if self.modelfile is not None:
            out.append(f"modelfile: {self.modelfile} (ollama create NAME -f {self.modelfile})")
        return out


def source_gguf(student: str) -> Path:
    """The GGUF the run's student was loaded from (its tokenizer goes into an exported GGUF)."""
    if not student:
        from engine.teachers.embedded import default_gguf_path

        return default_gguf_path()
    if student.endswith(".gguf"):
        return Path(student).expanduser()
    raise TrainError("--gguf needs a student that was loaded from a .gguf file (its tokenizer is copied from it); "
                     "this run's student is a Hugging Face directory: use llama.cpp's convert_hf_to_gguf.py")


def without_gguf_mark(model):
    """A model loaded from a GGUF file, with the loader's "quantized with gguf" mark removed.

    transformers marks a model it loaded from a GGUF as GGUF-quantized (`hf_quantizer`,
    `config.quantization_config`) even where it dequantized every tensor into plain floats on load, and
    `save_pretrained` then refuses it ("The model is quantized with gguf and is not serializable"). That
    is the default student's case. Weights still packed in GGUF blocks would be a different matter, so
    the mark goes only when every parameter is a plain float tensor."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return model
    method = quantizer.quantization_config.quant_method
    method = getattr(method, "value", method)
    packed = [name for name, p in model.named_parameters() if not p.dtype.is_floating_point]
    if method != "gguf" or packed or getattr(quantizer, "packed_modules", None):
        raise TrainError(f"the merged student still holds {method}-quantized weights ({', '.join(packed[:3]) or 'packed'}); "
                         "export needs it loaded in full precision")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def export_student(run_dir: Path, out: Path, *, ollama: bool = False, gguf: bool = False) -> ExportedStudent:
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainError(f"{out} is not an empty directory; choose a new directory for the export")
    # fp32 whatever precision the run trained in: the merged weights are exact
    model, tokenizer, cfg, _ = load_trained(run_dir, device=torch.device("cpu"), precision=FP32)
    tokenizer_gguf = source_gguf(cfg.student) if gguf else None  # refuse before writing anything
    ollama_file = modelfile(tokenizer, "./student.gguf" if gguf else "./merged") if ollama else None
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(adapter_dir(run_dir), out / "adapter")
    merged = without_gguf_mark(model.merge_and_unload())
    merged.save_pretrained(out / "merged", safe_serialization=True)
    tokenizer.save_pretrained(out / "merged")
    result = ExportedStudent(adapter=out / "adapter", merged=out / "merged")
    if tokenizer_gguf is not None:
        from trainer.gguf_export import check_gguf, export_gguf

        gguf_file = export_gguf(out / "merged", out / "student.gguf", tokenizer_gguf)
        result = replace(result, gguf=gguf_file, gguf_max_diff=check_gguf(gguf_file, merged, tokenizer))
    if ollama_file is not None:
        (out / "Modelfile").write_text(ollama_file, encoding="utf-8")
        result = replace(result, modelfile=out / "Modelfile")
    return result
