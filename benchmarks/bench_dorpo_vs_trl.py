"""DORPO (`shake train`'s recipe) against TRL's ORPOTrainer: same student, rows, LoRA and batch.

Each trainer runs in its own process on the bundled SmolLM2-135M-Instruct (converted once from its
GGUF to a Hugging Face directory, fp32), LoRA r=16 on all projections, batch 2 rows = 4 sequences,
max length 1024, gradient checkpointing on in both (TRL's default; DORPO's too). TRL's ORPO also
defaults to bf16 autocast, which is turned off here so that both compute in fp32.
Throughput counts every non-padding token of the prompt+chosen and prompt+rejected sequences,
over the steps after the first (warm-up). Memory is the process's resident set sampled every 10 ms
during training (after the model is loaded, which both do the same way).

Targets: DORPO, which also computes the KD term, at least 1.0x TRL's tokens/s and at most 1.0x its
peak memory. Also prints achieved FLOP/s (4·N·tokens: forward plus activation gradients; the frozen
base has no weight gradients) as a share of this machine's measured fp32 matmul peak.
Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = 5
BATCH = 2
LORA = dict(r=16, alpha=32, dropout=0.0, targets="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")


def script(i: int, broken: bool = False) -> str:
    lines = [f'"""Task {i}: tabulate squares."""', "", "def square(x):", "    return x * x", "", "def table(n):",
             "    rows = []", "    for k in range(1, n + 1):", "        rows.append((k, square(k)))", "    return rows", "",
             "if __name__ == '__main__':", f"    for k, v in table({5 + i}):", "        print(f'{k:>3} {v:>5}')"]
    if broken:
        lines.append("    print(undefined_name)")
    return "\n".join(lines) + "\n"


def export_student(dest: Path) -> None:
    """The bundled GGUF as a plain Hugging Face directory (dequantized fp32): TRL's Trainer refuses a
    model still tagged as GGUF-quantized, and both trainers must start from the same files."""
    import torch

    from trainer.student import load_base_model, load_tokenizer

    model = load_base_model("", device=torch.device("cpu"), four_bit=False)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    load_tokenizer("").save_pretrained(dest)


def build_dataset(data_dir: Path) -> None:
    """Eight paired rows in the engine's store, with the embedded teacher's logprobs on chosen."""
    from engine.agents import worker
    from engine.config import TeacherConfig
    from engine.store import DatasetStore
    from engine.teachers.embedded import EmbeddedTeacher

    teacher = EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=20))
    with DatasetStore(data_dir) as store:
        sid = store.create_session({"status": "done"})
        for i in range(8):
            messages = worker.worker_messages("Add a header line and right-align the columns.", script(i))
            chosen = f"REASONING: I add a header and keep the table.\n```python\nprint('  k     k^2')\n{script(i)}```\n"
            rejected = f"REASONING: I print more.\n```python\n{script(i, broken=True)}```\n"
            blob = store.put_logprobs(teacher.score(messages, chosen, top_logprobs=20))
            row = {"step_index": i, "step": "header", "cycle": 1,
                   "prompt": {"messages": messages, "instruction": "x", "script": script(i)},
                   "rejected": {"kind": "error", "text": rejected},
                   "chosen": {"text": chosen, "logprobs": {"blob": blob, "source": "rescored"}}}
            store.commit(sid, new_rows=[row])


class RssSampler:
    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def child_dorpo(data_dir: Path, out: Path, student: str) -> dict:
    from trainer.config import TrainConfig
    from trainer.recipe import train
    from trainer.student import load_base_model
    import torch

    torch.set_num_threads(os.cpu_count())
    model = load_base_model(student, device=torch.device("cpu"), four_bit=False)
    n_params = sum(p.numel() for p in model.parameters())
    cfg = TrainConfig(student=student, max_steps=STEPS, batch_size=BATCH, lora_r=LORA["r"], lora_alpha=LORA["alpha"],
                      lora_dropout=LORA["dropout"], lora_targets=LORA["targets"], eval_fraction=0.0,
                      checkpoint_every=10_000, max_length=1024, run_dir=str(out / "run"), lam=0.1, warmup_steps=0)
    with RssSampler() as rss:
        train(cfg, data_dir, progress=False, log=lambda m: None, base_model=model)
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    timed = rows[1:]
    return {"tokens": sum(r["tokens"] for r in timed), "seconds": sum(r["seconds"] for r in timed),
            "peak_rss_mb": rss.peak / 2**20, "n_params": n_params}


def child_trl(data_dir: Path, out: Path, student: str) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from engine.store import DatasetStore
    from trainer.student import load_base_model, load_tokenizer

    torch.set_num_threads(os.cpu_count())
    tokenizer = load_tokenizer(student)
    model = load_base_model(student, device=torch.device("cpu"), four_bit=False)
    with DatasetStore(data_dir, writable=False) as store:
        rows = [r for r in store.rows()]
    dataset = Dataset.from_list([{"prompt": r.prompt.chat(),
                                  "chosen": [{"role": "assistant", "content": r.chosen.text}],
                                  "rejected": [{"role": "assistant", "content": r.rejected.text}]} for r in rows])
    step_times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            step_times.append(time.perf_counter() - self.t)

    args = ORPOConfig(output_dir=str(out / "trl"), per_device_train_batch_size=BATCH, max_steps=STEPS,
                      learning_rate=2e-4, beta=0.1, max_length=1024, logging_steps=1, report_to=[],
                      save_strategy="no", use_cpu=True, lr_scheduler_type="constant", dataloader_num_workers=0,
                      disable_tqdm=True, seed=0, bf16=False, gradient_checkpointing=True)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules=LORA["targets"].split(","), task_type="CAUSAL_LM")
    trainer = ORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft, callbacks=[Timer()])
    # the same token count as DORPO: every non-padding token of both sequences of each row, in order
    order = list(trainer.get_train_dataloader())
    tokens_per_step = []
    for batch in order[:STEPS]:
        tokens_per_step.append(int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum()))
    with RssSampler() as rss:
        trainer.train()
    return {"tokens": sum(tokens_per_step[1:STEPS]), "seconds": sum(step_times[1:]), "peak_rss_mb": rss.peak / 2**20}


def matmul_peak_gflops() -> float:
    import torch

    torch.set_num_threads(os.cpu_count())
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - started))
    return best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=("dorpo", "trl"))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--student", default="")
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.child:
        result = (child_dorpo if args.child == "dorpo" else child_trl)(args.data, args.out, args.student)
        (args.out / "result.json").write_text(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_dataset(tmp / "data")
        export_student(tmp / "student")
        results = {}
        for which in ("dorpo", "trl"):
            out = tmp / which
            out.mkdir()
            subprocess.run([sys.executable, __file__, "--child", which, "--data", str(tmp / "data"), "--out", str(out),
                            "--student", str(tmp / "student")],
                           check=True, stdout=subprocess.DEVNULL)
            results[which] = json.loads((out / "result.json").read_text())
    peak = matmul_peak_gflops()
    d, t = results["dorpo"], results["trl"]
    d_tps, t_tps = d["tokens"] / d["seconds"], t["tokens"] / t["seconds"]
    flops = 4 * d["n_params"] * d_tps
    print(json.dumps({
        "dorpo_tokens_per_s": round(d_tps, 1),
        "trl_orpo_tokens_per_s": round(t_tps, 1),
        "throughput_ratio": round(d_tps / t_tps, 3),
        "dorpo_peak_rss_mb": round(d["peak_rss_mb"]),
        "trl_orpo_peak_rss_mb": round(t["peak_rss_mb"]),
        "memory_ratio": round(d["peak_rss_mb"] / t["peak_rss_mb"], 3),
        "dorpo_gflops": round(flops / 1e9, 1),
        "matmul_peak_gflops": round(peak, 1),
        "share_of_matmul_peak": round(flops / 1e9 / peak, 3),
        "targets": {"throughput_ratio_min": 1.0, "memory_ratio_max": 1.0},
    }))


if __name__ == "__main__":
    main()
