"""The one loader of students: from a spec or a path to a model and tokenizer in a precision.

A student is named in two ways:

  * a **base spec**, as `shake train --student` takes it: "" (the bundled SmolLM2-135M-Instruct
    GGUF), a `.gguf` file, or a Hugging Face model directory (`base_source`);
  * a **trained student**, as the engine's student backend, `shake eval` and `shake student export`
    take it: a training run directory (its final adapter, else its newest complete checkpoint), an
    exported adapter directory, or a merged model directory (`resolve_student`).

Both become a `StudentSource`; `load_student` builds the model from it: the base in the requested
precision, plus the adapter either kept as LoRA layers (training-shaped: `shake eval` computes the
loss exactly as the trainer did) or merged in fp32 and then cast (generation: one matmul per
projection instead of three, and the LoRA update is not rounded away when the weights are bf16).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StudentError
from engine.student.precision import Precision
from engine.student.runs import ADAPTER_CONFIG, ADAPTER_WEIGHTS, RunDir

HF_CONFIG = "config.json"  # what makes a directory a Hugging Face model directory


@dataclass(frozen=True)
class StudentSource:
    """Where a student's weights come from."""

    base: str  # a Hugging Face model directory, or the directory holding `gguf_file`
    gguf_file: str = ""  # file name inside `base` when the base weights are a GGUF file
    adapter: Path | None = None  # a PEFT LoRA adapter on top of the base
    version: str = ""  # a label: RUN@final, RUN@step-000050, a directory name
    run: RunDir | None = None  # the training run it came from, if any

    @property
    def kind(self) -> str:
        return "lora" if self.adapter is not None else "merged"

    @property
    def gguf_path(self) -> Path | None:
        return Path(self.base) / self.gguf_file if self.gguf_file else None

    @property
    def weights_file(self) -> Path | None:
        """The file whose fingerprint identifies these weights (the adapter's, else the base's)."""
        if self.adapter is not None:
            return self.adapter / ADAPTER_WEIGHTS
        if self.gguf_file:
            return Path(self.base) / self.gguf_file
        found = sorted(Path(self.base).glob("*.safetensors"))
        return found[0] if found else None


def base_source(student: str) -> StudentSource:
    """The base model of a `--student` spec: "" (bundled GGUF), a .gguf file or a model directory."""
    if not student:
        from engine.teachers.embedded import default_gguf_path

        gguf = default_gguf_path()
        return StudentSource(str(gguf.parent), gguf.name, version=gguf.name)
    path = Path(student).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise StudentError(f"no student GGUF file at {path}")
        return StudentSource(str(path.parent), path.name, version=path.name)
    if not path.is_dir():
        raise StudentError(f"no student model at {path}: give a Hugging Face model directory or a .gguf file")
    if not (path / HF_CONFIG).exists():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:  # a GGUF base as PEFT records it: the directory the file was loaded from
            return StudentSource(str(path), ggufs[0].name, version=ggufs[0].name)
        raise StudentError(f"{path} has no config.json; it is not a Hugging Face model directory")
    return StudentSource(str(path), version=path.name)


def resolve_student(path: Path) -> StudentSource:
    """A trained student: a training run, an exported adapter, a merged model directory or a GGUF file."""
    path = Path(path).expanduser()
    run = RunDir(path)
    if run.started and run.snapshot.exists():
        found = run.final_adapter()
        if found is None:
            raise StudentError(f"the training run {path} has no adapter yet (no finished run and no complete "
                               "checkpoint)")
        adapter, label = found
        base = base_source(run.student)
        return StudentSource(base.base, base.gguf_file, adapter, f"{run.name}@{label}", run)
    if (path / ADAPTER_CONFIG).exists():
        spec = json.loads((path / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path") or ""
        base = base_source(spec)
        return StudentSource(base.base, base.gguf_file, path, path.name)
    if (path / HF_CONFIG).exists() or path.suffix == ".gguf":
        return base_source(str(path))
    raise StudentError(f"no student at {path}: give a training run, an adapter or a merged model directory")


def resolve_device(name: str):
    """"auto", "cpu" or "cuda" as a torch device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StudentError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def pretrained_dir(source: StudentSource) -> str:
    """The Hugging Face directory to load `source`'s base from: a GGUF base's conversion, made once
    per GGUF digest (engine/student/converted.py), else the model directory itself."""
    if source.gguf_path is None:
        return source.base
    from engine.student.converted import converted

    return str(converted(source.gguf_path))


def load_tokenizer(source: StudentSource | str):
    from transformers import AutoTokenizer

    source = base_source(source) if isinstance(source, str) else source
    tokenizer = AutoTokenizer.from_pretrained(pretrained_dir(source))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise StudentError(f"the student's tokenizer at {source.base} has no chat template; use an instruct model")
    return tokenizer


def load_base_model(source: StudentSource | str, *, device, dtype=None, four_bit: bool = False):
    """The base weights in `dtype` (default fp32), or nf4 with `dtype` as compute dtype when `four_bit`.

    Attention is SDPA: the trainer passes its own 4-D boolean masks (prompt shared by chosen and
    rejected), which SDPA takes as they are.
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = base_source(source) if isinstance(source, str) else source
    dtype = dtype or torch.float32
    kwargs: dict = {"dtype": dtype, "attn_implementation": "sdpa"}
    if four_bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    model = AutoModelForCausalLM.from_pretrained(pretrained_dir(source), **kwargs)
    # the base as a run records it (PEFT's base_model_name_or_path): the GGUF's directory, not the cache
    model.name_or_path = model.config._name_or_path = source.base
    if not four_bit:
        model.to(device)
    return model


@dataclass
class LoadedStudent:
    model: object  # a transformers causal LM (a PeftModel when the adapter is kept as LoRA layers)
    tokenizer: object
    source: StudentSource
    precision: Precision
    device: object = field(default=None)


def load_student(source: StudentSource, *, device, precision: Precision, merge: bool) -> LoadedStudent:
    """Base + adapter in `precision`, in eval mode.

    merge=False keeps the LoRA layers (fp32), as the trainer built them; merge=True folds the adapter
    into the base weights in fp32 and casts the result to the precision's dtype.
    """
    import torch

    tokenizer = load_tokenizer(source)
    if source.adapter is None:
        model = load_base_model(source, device=device, dtype=precision.dtype)
    else:
        from peft import PeftModel

        base_dtype = torch.float32 if merge else precision.dtype
        model = load_base_model(source, device=device, dtype=base_dtype)
        model = PeftModel.from_pretrained(model, str(source.adapter))
        if merge:
            model = model.merge_and_unload().to(precision.dtype)
    model.to(device).eval()
    return LoadedStudent(model, tokenizer, source, precision, device)
