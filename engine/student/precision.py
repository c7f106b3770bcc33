"""Which number format the student computes in: `auto`, `fp32`, `bf16` or `fp16`.

`auto` picks bf16 where the hardware multiplies bf16 natively, fp32 elsewhere:

    CUDA          bf16 when the device supports it (`torch.cuda.is_bf16_supported()`), else fp32
    CPU           bf16 when /proc/cpuinfo lists `amx_bf16` or `avx512_bf16`, else fp32

The CPU is detected, not assumed: without those instructions PyTorch still runs bf16 matmuls, but
by converting to fp32 and back, slower than fp32 itself. On the development machine (AMX) a
2048x2048 matmul runs about 5-10x faster in bf16 than in fp32.

What each precision means for training (the trainer's recipe applies it):

    frozen base weights       stored in the chosen dtype (bf16: half the memory of fp32)
    decoder body              computed in the chosen dtype (autocast: LoRA products too)
    LoRA weights, optimizer   fp32 (autocast casts a copy of each LoRA weight per forward)
    LM head logits            chosen dtype out of the matmul, then upcast: log-softmax, KD,
                              odds ratio and every reduction of the loss run in fp32
    fp16 only                 a dynamic loss scale (fp16's range is too short for gradients)

Generation (the engine's student backend) loads the weights in the chosen dtype after merging the
adapter in fp32, so a small LoRA update is not rounded away by bf16's 8-bit mantissa.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPU_FP16_FLAGS = ("amx_fp16", "avx512_fp16")


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    reason: str  # why this one: shown in the trainer's first log line
    warning: str = ""  # set when an explicit choice is likely slower than fp32 on this hardware

    @property
    def dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def reduced(self) -> bool:
        """Computes in 16 bits (autocast on, weights stored in 16 bits)."""
        return self.name != "fp32"


FP32 = Precision("fp32", "asked for")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty elsewhere, which means fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has(flags: frozenset[str], wanted: tuple[str, ...]) -> list[str]:
    return [f for f in wanted if f in flags]


def cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_precision(requested: str, device_type: str) -> Precision:
    """The precision to use on `device_type` ("cpu" or "cuda") for a requested name."""
    if requested not in PRECISIONS:
        from engine.errors import StudentError

        raise StudentError(f"precision is one of {', '.join(PRECISIONS)}, not {requested!r}")
    if device_type == "cuda":
        native_bf16 = cuda_bf16()
        if requested == "auto":
            return Precision("bf16", "auto: the GPU supports bf16") if native_bf16 else \
                Precision("fp32", "auto: the GPU does not support bf16")
        if requested == "bf16" and not native_bf16:
            return Precision("bf16", "asked for", "this GPU has no native bf16; expect it to be slower than fp32")
        return Precision(requested, "asked for")
    flags = cpu_flags()
    bf16 = cpu_has(flags, CPU_BF16_FLAGS)
    if requested == "auto":
        if bf16:
            return Precision("bf16", f"auto: the CPU has {' and '.join(bf16)}")
        return Precision("fp32", f"auto: the CPU has neither {' nor '.join(CPU_BF16_FLAGS)}")
    if requested == "bf16" and not bf16:
        return Precision("bf16", "asked for", f"the CPU has neither {' nor '.join(CPU_BF16_FLAGS)}: bf16 is "
                                              "emulated and likely slower than fp32")
    if requested == "fp16" and not cpu_has(flags, CPU_FP16_FLAGS):
        return Precision("fp16", "asked for", f"the CPU has neither {' nor '.join(CPU_FP16_FLAGS)}: fp16 is "
                                              "emulated and likely slower than fp32")
    return Precision(requested, "asked for")
