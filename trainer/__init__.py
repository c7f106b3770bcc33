"""DORPO distillation of the engine's dataset into a small student (QLoRA on CUDA, LoRA or QLoRA on CPU)."""
