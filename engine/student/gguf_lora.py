"""A trained student's PEFT LoRA adapter as a GGUF LoRA adapter, the file llama.cpp applies on top of
the base GGUF the student was trained from (`Llama(lora_path=...)`).

Why an adapter and not a merged GGUF: the student trains on the base GGUF's own weights (transformers
dequantizes them, engine/student/converted.py), so the base file plus the LoRA update is the trained
student exactly, in the base's own quantization (Q4_1 for the bundled SmolLM2: the embedded teacher's
speed), while a merged file would be F32 (four times the bytes to read per token) or re-quantized
(another model). The adapter is a few MB and written in well under a second; the cache keeps one per
adapter and base (`converted.lora_gguf`).

The file is what llama.cpp's `convert_lora_to_gguf.py` writes: `general.type = "adapter"`,
`adapter.type = "lora"`, `adapter.lora.alpha`, and per adapted projection `NAME.lora_a` (r × in) and
`NAME.lora_b` (out × r) under the base tensor's GGUF name (engine/student/gguf_layout.py; B's rows of
q/k permuted like the base's rows). llama.cpp scales each update by alpha / rank, with the rank read
from B's shape; PEFT's own scaling (alpha / r, or alpha / √r with rsLoRA) is folded into B instead
and alpha is written as the rank, so the two agree whatever PEFT's options were.

What llama.cpp cannot apply is refused with the reason (`StudentError`), and the student backend then
generates with transformers: DoRA (a per-column magnitude llama.cpp has no place for), per-module
ranks or alphas, trained biases or whole modules (`modules_to_save`), and adapted embeddings or heads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from engine.errors import StudentError
from engine.student.gguf_layout import INTERLEAVED, permute_rotary, rotary_heads
from engine.student.runs import ADAPTER_CONFIG, ADAPTER_WEIGHTS

PEFT_PREFIX = "base_model.model."


def _refusal(config: dict) -> str | None:
    """Why llama.cpp cannot apply this PEFT adapter as it is, or None."""
    if config.get("peft_type", "LORA") != "LORA":
        return f"the adapter is {config.get('peft_type')}, not LoRA"
    if config.get("use_dora"):
        return "the adapter is DoRA (a per-column magnitude that llama.cpp's LoRA has no place for)"
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        return "the adapter has per-module ranks or alphas"
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        return "the adapter trains biases"
    if config.get("modules_to_save"):
        return f"the adapter trains whole modules ({', '.join(config['modules_to_save'])})"
    if config.get("fan_in_fan_out"):
        return "the adapter's weights are stored fan-in-fan-out"
    return None


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        raise StudentError(f"the base GGUF has no {key} in its metadata")
    return field.contents()


def write_lora_gguf(adapter_dir: Path, base_gguf: Path, out_file: Path) -> Path:
    """Write `adapter_dir` (PEFT: adapter_config.json + adapter_model.safetensors) as a GGUF LoRA for
    `base_gguf`; StudentError with the reason when llama.cpp could not apply it as trained."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    if reason := _refusal(config):
        raise StudentError(reason)
    reader = gguf.GGUFReader(str(base_gguf))
    arch_name = str(_field(reader, "general.architecture"))
    if arch_name not in INTERLEAVED:
        raise StudentError(f"the base GGUF's architecture is {arch_name}; the adapter converts for "
                           f"{', '.join(sorted(INTERLEAVED))}")
    n_layers = int(_field(reader, f"{arch_name}.block_count"))
    n_head = int(_field(reader, f"{arch_name}.attention.head_count"))
    n_kv = int(_field(reader, f"{arch_name}.attention.head_count_kv")) if \
        f"{arch_name}.attention.head_count_kv" in reader.fields else n_head
    base_tensors = {t.name for t in reader.tensors}
    del reader
    arch = next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == arch_name)
    name_map = gguf.get_tensor_name_map(arch, n_layers)

    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scaling = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
    weights = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, data in weights.items():
        for part in ("lora_A", "lora_B"):
            if key.endswith(f".{part}.weight"):
                module = key.removeprefix(PEFT_PREFIX).removesuffix(f".{part}.weight")
                pairs.setdefault(module, {})[part] = data.astype(np.float32)
                break
        else:
            raise StudentError(f"the adapter holds a tensor llama.cpp's LoRA cannot apply: {key}")
    if not pairs:
        raise StudentError("the adapter holds no LoRA weights")

    writer = gguf.GGUFWriter(str(out_file), arch_name)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    # llama.cpp scales by alpha / rank: alpha = rank makes that 1, PEFT's scaling is in B
    writer.add_float32("adapter.lora.alpha", float(r))
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"lora_A", "lora_B"} or ab["lora_A"].shape[0] != r or ab["lora_B"].shape[1] != r:
            raise StudentError(f"the adapter's LoRA pair of {module} is incomplete or not of rank {r}")
        hf_name = f"{module}.weight"
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight",))
        if gguf_name is None or gguf_name not in base_tensors:
            raise StudentError(f"the adapter adapts {module}, which has no tensor of its own in the base GGUF "
                               "(an embedding or a tied head)" if gguf_name else
                               f"the adapter adapts {module}, which llama.cpp's {arch_name} layout does not name")
        if gguf_name.startswith("token_embd"):
            raise StudentError(f"the adapter adapts the token embeddings ({module})")
        b = ab["lora_B"] * np.float32(scaling)
        heads = rotary_heads(hf_name, n_head, n_kv) if INTERLEAVED[arch_name] else None
        if heads is not None:
            b = permute_rotary(b, heads)
        writer.add_tensor(f"{gguf_name}.lora_a", np.ascontiguousarray(ab["lora_A"]))
        writer.add_tensor(f"{gguf_name}.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out_file)
