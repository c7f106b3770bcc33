"""GGUF students converted to Hugging Face form once per GGUF digest, kept in the cache directory.

transformers loads a GGUF student by dequantizing every tensor and converting the tokenizer, which
takes 20-40 s for SmolLM2-135M on this CPU (two minutes under load) in every process that loads it:
each `shake train`, `shake eval`, `shake student export` and student teacher. The result depends only
on the GGUF's bytes, so the first load saves it (float32 safetensors, config, tokenizer) under

    CACHE/students/SHA256/            config.json, model.safetensors, tokenizer files, CONVERTED

and every later load reads that directory instead. A trained student served by llama.cpp (the student
backend, engine/teachers/student.py) needs its PEFT adapter as a GGUF LoRA (engine/student/gguf_lora.py),
written once per adapter and base under

    CACHE/adapters/SHA256/            adapter.gguf, CONVERTED

CACHE is `$SHAKE_CACHE`, else `$XDG_CACHE_HOME/shake`, else `~/.cache/shake`: regenerable, so not in
the data directory that holds the dataset (deleting it costs one conversion).

A conversion is written into a temporary sibling directory, gets its `CONVERTED` marker last, and is
renamed into place in one step, so a kill mid-save or two processes converting at once never leave a
half-written entry that a later load would read; an entry without the marker is not used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

STUDENTS = "students"
ADAPTERS = "adapters"
LORA_FILE = "adapter.gguf"
CONVERTED = "CONVERTED"  # the marker a finished conversion gets last


def cache_dir() -> Path:
    """Where regenerable files go: `$SHAKE_CACHE`, else `$XDG_CACHE_HOME/shake`, else ~/.cache/shake."""
    if env := os.environ.get("SHAKE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shake"


def gguf_digest(gguf: Path) -> str:
    """The sha256 of a file's bytes (a GGUF, an adapter's weights) (remembered per path, size and modification time)."""
    stat = Path(gguf).stat()
    return _digest(str(Path(gguf).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry(gguf: Path) -> Path:
    """The cache directory of this GGUF's conversion (complete or not)."""
    return cache_dir() / STUDENTS / gguf_digest(gguf)


def converted(gguf: Path) -> Path:
    """The Hugging Face directory of `gguf`, converting it on the first call for these bytes."""

    def fill(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = Path(gguf)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        # transformers marks a GGUF-loaded model as quantized even though every tensor is dequantized to
        # float32 (see trainer/export.py `without_gguf_mark`); the saved copy is plain float32
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(tmp)

    return _publish(entry(gguf), fill)


def lora_entry(adapter: Path, base_gguf: Path) -> Path:
    """The cache directory of this adapter's GGUF LoRA for this base (complete or not): named by the
    digests of the adapter's weights, its configuration and the base GGUF (whose layout it is written in)."""
    from engine.student.runs import ADAPTER_CONFIG, ADAPTER_WEIGHTS

    parts = [gguf_digest(Path(adapter) / ADAPTER_WEIGHTS), gguf_digest(Path(adapter) / ADAPTER_CONFIG),
             gguf_digest(base_gguf)]
    return cache_dir() / ADAPTERS / hashlib.sha256(" ".join(parts).encode()).hexdigest()


def lora_gguf(adapter: Path, base_gguf: Path) -> Path:
    """`adapter` (a PEFT LoRA directory) as a GGUF LoRA adapter of `base_gguf` for llama.cpp, written on
    the first call for these bytes (engine/student/gguf_lora.py; StudentError when it cannot be)."""

    def fill(tmp: Path) -> None:
        from engine.student.gguf_lora import write_lora_gguf

        write_lora_gguf(adapter, base_gguf, tmp / LORA_FILE)

    return _publish(lora_entry(adapter, base_gguf), fill) / LORA_FILE


def _publish(target: Path, fill) -> Path:
    """`target`, complete: made by `fill(tmp)` in a temporary sibling, marked, and renamed into place
    unless another process got there first."""
    if (target / CONVERTED).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(tmp)
        for path in tmp.iterdir():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        (tmp / CONVERTED).write_text("ok\n")
        if target.exists():  # an entry without its marker (a killed conversion): replaced
            if (target / CONVERTED).exists():  # another process finished first: keep its copy
                shutil.rmtree(tmp)
                return target
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:  # another process renamed its copy in between
            if not (target / CONVERTED).exists():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
