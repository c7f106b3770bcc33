"""Where a DORPO training step's memory goes, and what the trainer's two fixes take away.

One process per configuration (SmolLM2-135M-Instruct, LoRA r=16 on all projections, batch 2 rows,
gradient checkpointing on, the rows of bench_dorpo_vs_trl.py), each running three training steps
with the recipe's own functions:

    fp32 + glibc defaults      the trainer before issue #14
    fp32 + allocator fix       trainer/allocator.py: large blocks mapped and unmapped on their own
    bf16 + allocator fix       what `--precision auto` runs on a CPU with AMX (the frozen base in bf16)

and reports, in MB: the resident set after the imports, the frozen weights (their bytes), the LoRA
weights with their gradients and AdamW moments, the activations saved for the backward pass by one
forward (measured with autograd's saved-tensor hooks), the chunked LM head's working set (one chunk
of full-vocabulary fp32 logits, its log-softmax and its gradient), the peak resident set over the
steps, and what is left: memory the allocator holds that no live tensor explains.
`--quick`: the same on a tiny random student (benchmarks/tiny_student.py; seconds: the check that it
still runs, tests/test_benchmarks.py; its figures mean nothing).
Prints one JSON object as its last line: for each name of `CONFIGS`, the keys of `RESULT_KEYS`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CONFIGS = {"fp32_glibc_default": ("fp32", False), "fp32_allocator_fix": ("fp32", True),
           "bf16_allocator_fix": ("bf16", True)}
MB = 2**20
RESULT_KEYS = ("after_imports_mb", "frozen_weights_mb", "lora_and_optimizer_mb", "rss_after_load_mb",
               "saved_activations_mb", "lm_head_chunk_mb", "step_peak_rss_mb", "unexplained_mb")


def child(name: str, workdir: Path, student: str) -> dict:
    import psutil
    import torch

    precision, fix = CONFIGS[name]
    proc = psutil.Process()
    from bench_dorpo_vs_trl import BATCH, LORA, RssSampler
    from engine.store import DatasetStore, Snapshot
    from engine.student.precision import resolve_precision
    from trainer import allocator
    from trainer.config import TrainConfig
    from trainer.data import build_examples, collate
    from trainer.forward import batch_loss
    from trainer.recipe import micro_batches
    from trainer.student import add_lora, load_base_model, load_tokenizer

    torch.set_num_threads(os.cpu_count())
    if fix:
        allocator.return_freed_memory_eagerly()
    after_imports = proc.memory_info().rss / MB
    cfg = TrainConfig(student=student, batch_size=BATCH, lora_r=LORA["r"], lora_alpha=LORA["alpha"],
                      lora_dropout=LORA["dropout"], lora_targets=LORA["targets"], max_length=1024, precision=precision)
    model = load_base_model(student, device=torch.device("cpu"), dtype=resolve_precision(precision, "cpu").dtype)
    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / MB
    tokenizer = load_tokenizer(student)
    with tempfile.TemporaryDirectory() as tmp, DatasetStore(workdir / "data", writable=False) as store:
        store.snapshot(Path(tmp) / "snap")
        examples, _ = build_examples(Snapshot(Path(tmp) / "snap"), tokenizer, cfg)
    model = add_lora(model, cfg)
    model.train()
    for p in model.parameters():  # fault every weight page in, as the first forward would
        p.data.sum()
    if fix:
        allocator.trim()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    lora = 4 * sum(p.numel() * p.element_size() for p in params) / MB  # weights, grads, two moments
    after_load = proc.memory_info().rss / MB
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with RssSampler() as rss:
        for step in range(3):
            batch = collate(micro_batches(examples, cfg, step), tokenizer.pad_token_id)
            if step == 0:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    parts = batch_loss(model, batch, cfg)
            else:
                parts = batch_loss(model, batch, cfg)
            parts.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    vocab = model.get_output_embeddings().weight.shape[0]
    head = 3 * cfg.loss_chunk * vocab * 4 / MB
    peak = rss.peak / MB
    return {"after_imports_mb": round(after_imports), "frozen_weights_mb": round(weights),
            "lora_and_optimizer_mb": round(lora, 1), "rss_after_load_mb": round(after_load),
            "saved_activations_mb": round(saved / MB), "lm_head_chunk_mb": round(head),
            "step_peak_rss_mb": round(peak),
            "unexplained_mb": round(peak - after_load - saved / MB - head)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=tuple(CONFIGS))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where bench_dorpo_vs_trl.py --workdir keeps its dataset and student (built if missing)")
    parser.add_argument("--quick", action="store_true", help="a tiny random student: checks that the benchmark runs")
    args = parser.parse_args()
    student_name = "tiny-student" if args.quick else "student"
    if args.child:
        print(json.dumps(child(args.child, args.workdir, str(args.workdir / student_name))))
        return
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        from bench_dorpo_vs_trl import build_dataset, export_student

        if not (workdir / "data").exists():
            build_dataset(workdir / "data")
        if args.quick:
            from benchmarks.tiny_student import tiny_student

            if not (workdir / student_name).exists():
                tiny_student(workdir / student_name)
        elif not (workdir / student_name).exists():
            export_student(workdir / student_name)
        results = {}
        for name in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--child", name, "--workdir", str(workdir)]
                                 + (["--quick"] if args.quick else []), check=True, capture_output=True, text=True).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
            print(name, results[name], file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
