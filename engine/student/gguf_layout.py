"""Where a Hugging Face student's tensors go in llama.cpp's GGUF layout: the one place that knows it,
for the merged GGUF that `shake student export --gguf` writes (trainer/gguf_export.py) and for the
GGUF LoRA adapter the student backend serves on llama.cpp (engine/student/gguf_lora.py).

Hugging Face stores the query and key projections in the rotate-half rotary layout; llama.cpp's Llama
architecture expects the interleaved one, so for it the rows of those two are permuted back the way
llama.cpp's converter does (its Qwen architectures use the rotate-half layout as it is). A LoRA update
B·A of such a projection is permuted the same way, which moves the rows of B only.
"""

from __future__ import annotations

import numpy as np

# Hugging Face model_type -> (llama.cpp architecture, whether q/k go to the interleaved rotary layout)
ARCHITECTURES = {"llama": ("llama", True), "mistral": ("llama", True), "qwen2": ("qwen2", False),
                 "qwen3": ("qwen3", False)}
# llama.cpp architecture -> whether its q/k rows are interleaved (a GGUF names its architecture, not the
# Hugging Face model_type it came from)
INTERLEAVED = {arch: interleave for arch, interleave in ARCHITECTURES.values()}


def permute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face rotate-half → llama.cpp interleaved rotary layout (rows of q_proj / k_proj, or of their B)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rotary_heads(hf_name: str, n_head: int, n_kv: int) -> int | None:
    """The head count whose rotary layout the rows of `hf_name` follow (q: n_head, k: n_kv), else None."""
    if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
        return n_head
    if hf_name.endswith(("k_proj.weight", "k_proj.bias")):
        return n_kv
    return None
