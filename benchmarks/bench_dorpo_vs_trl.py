"""DORPO (`shake train`'s recipe) against TRL's ORPOTrainer: same student, rows, LoRA and batch.

Three trainers, each in its own process on the bundled SmolLM2-135M-Instruct (converted once from its
GGUF to a Hugging Face directory, fp32 on disk), LoRA r=16 on all projections, batch 2 rows (each a
chosen and a rejected), max length 1024, gradient checkpointing on in all three:

    dorpo        `shake train` with `--precision auto` (bf16 on this CPU: AMX; fp32 on CPUs without)
    trl_default  TRL's ORPOConfig as a user gets it: bf16 autocast on (also on a CPU), fp32 weights
    trl_fp32     the same with bf16=False

The machine is shared, so the three are measured in one run, interleaved: each round runs all three
(the order reversed every other round) with the matmul peaks measured in between, and the ratios are
taken within a round; the JSON reports the median round and the range over rounds.

What is counted:
  * throughput: every non-padding token of the prompt+chosen and prompt+rejected sequences (the
    same count on both sides), over the steps after the first (warm-up). DORPO packs each row into
    one sequence in which the prompt is computed once for both responses (trainer/data.py): it
    processes fewer positions for the same tokens, and that is part of what is measured;
  * memory: the process's resident set sampled every 10 ms from just before training starts (the
    model already loaded: both load it the same way) to its end;
  * FLOPs (DORPO's): matmul and attention FLOPs of the work actually executed per step, from the
    model's shapes and each batch: decoder projections (frozen: forward + activation gradients) and
    LoRA (plus its weight gradients) on every processed position, attention on every allowed
    query-key pair of the mask, the LM head on response positions only; plus the recomputation that
    gradient checkpointing (decoder) and the chunked head perform in the backward pass. Elementwise
    work (norms, rotary, softmax, the loss) is not counted. `dorpo_model_gflops` leaves the
    recomputation out (what the training needs), `dorpo_gflops` keeps it (what the CPU executed).
    The shares of peak divide the executed FLOP/s by the best 2048x2048 matmul measured in this run.

Targets (issue #14): at least 3x TRL's default-config throughput at no more than 0.5x its peak memory,
and at least 30% of the bf16 matmul peak. `--profile` writes a torch profiler table of two DORPO steps to
benchmarks/results/dorpo_step_profile.txt (`--rounds 0 --profile`: that table alone, a few minutes).
`--quick`: one round of 2 steps on a tiny random student (benchmarks/tiny_student.py) and 256x256 matmul
peaks (a minute: the check that it still runs, tests/test_benchmarks.py; its figures mean nothing).
Prints one JSON object as its last line, with the keys of `RESULT_KEYS`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUNDS = 2
SIZES = {"full": {"steps": 5, "matmul": 2048, "student": "student"},
         "quick": {"steps": 2, "matmul": 256, "student": "tiny-student"}}
SIZE = dict(SIZES["full"])  # this process's sizes (main() sets --quick's, in the children too)
RESULT_KEYS = ("dorpo_tokens_per_s", "trl_orpo_tokens_per_s", "throughput_ratio", "dorpo_peak_rss_mb",
               "trl_orpo_peak_rss_mb", "memory_ratio", "dorpo_gflops", "matmul_peak_gflops", "share_of_matmul_peak",
               "trl_default_tokens_per_s", "trl_default_peak_rss_mb", "throughput_ratio_vs_trl_default",
               "memory_ratio_vs_trl_default", "matmul_peak_bf16_gflops", "share_of_bf16_peak", "dorpo_model_gflops",
               "model_flops_share_of_bf16_peak", "precision", "ranges_over_rounds",
               "throughput_ratio_vs_trl_default_cpu_time", "dorpo_positions_per_token", "rounds", "profile_shares",
               "load_average", "cpu_count", "targets")
BATCH = 2
LORA = dict(r=16, alpha=32, dropout=0.0, targets="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
TRAINERS = ("dorpo", "trl_default", "trl_fp32")
RESULTS = ROOT / "benchmarks" / "results"


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

    from engine.student.loader import load_base_model, load_tokenizer

    model = load_base_model("", device=torch.device("cpu"))
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
    from engine.store.schema import (Chosen, LogprobRecord, LogprobSource, Prompt, Rejected, RejectedKind, Row,
                                     SessionState, messages_of)
    from engine.teachers.embedded import EmbeddedTeacher

    teacher = EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=20))
    with DatasetStore(data_dir) as store:
        sid = store.create_session(SessionState(script_path="/bench.py", request="header", original_script=script(0),
                                                current_script=script(0)))
        for i in range(8):
            messages = worker.worker_messages("Add a header line and right-align the columns.", script(i))
            prompt = Prompt(messages_of(messages), "Add a header line and right-align the columns.", script(i))
            chosen = f"REASONING: I add a header and keep the table.\n```python\nprint('  k     k^2')\n{script(i)}```\n"
            rejected = f"REASONING: I print more.\n```python\n{script(i, broken=True)}```\n"
            scored = teacher.score(messages, chosen, top_logprobs=20)
            blob = store.put_logprobs(scored)
            record = LogprobRecord(blob=blob, n_tokens=len(scored), k=scored.k, has_ids=scored.has_ids,
                                   source=LogprobSource.RESCORED, scorer=teacher.identity, prompt_sha=prompt.sha)
            row = Row(step_index=i, step="header", cycle=1, prompt=prompt,
                      rejected=Rejected(text=rejected, teacher=teacher.identity, cycle=1, created_at="t",
                                        kind=RejectedKind.ERROR),
                      chosen=Chosen(text=chosen, teacher=teacher.identity, cycle=1, created_at="t", logprobs=record))
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
        self.peak = self.proc.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def step_flops(config, batch, lora_params: int, checkpointing: bool) -> tuple[float, float]:
    """(model FLOPs, executed FLOPs) of one DORPO micro-batch: see the module docstring."""
    d, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    head_dim = getattr(config, "head_dim", None) or d // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    projections = layers * (2 * d * d + 2 * d * kv + 3 * d * config.intermediate_size)
    positions = batch.n_positions
    responses = int(batch.chosen_labels.numel() + batch.rejected_labels.numel())
    pairs = int(batch.attention_mask[:, 0].sum()) - (batch.input_ids.numel() - positions)  # padding attends itself
    attention = 4 * pairs * config.num_attention_heads * head_dim * layers
    decoder_fwd = 2 * projections * positions + 2 * lora_params * positions + attention
    decoder_bwd = 2 * projections * positions + 4 * lora_params * positions + 2 * attention
    head = 2 * vocab * d * responses
    model = decoder_fwd + decoder_bwd + 2 * head
    executed = model + head + (decoder_fwd if checkpointing else 0)
    return float(model), float(executed)


PROFILE_KINDS = (  # (kind, ops by name prefix after "aten::"); the rest is "other"
    ("matmul", ("mm", "bmm", "addmm", "matmul", "linear")),
    ("attention", ("_scaled_dot_product", "scaled_dot_product", "_flash_attention")),
    ("log-softmax and loss", ("_log_softmax", "log_softmax", "logsumexp", "gather", "nll", "_softmax")),
    ("elementwise and copies", ("mul", "add", "sub", "div", "neg", "pow", "sqrt", "rsqrt", "exp", "silu", "copy_",
                                "_to_copy", "fill_", "where", "sum", "mean", "cat", "uniform_", "clamp", "masked_fill",
                                "zero_", "index", "embedding", "threshold", "cos", "sin", "lt", "gt", "eq", "ne")),
)


def profile_shares(events) -> dict[str, float]:
    """Self CPU time of the profiled steps by kind of work (each op counted once, by its own time)."""
    totals = {kind: 0.0 for kind, _ in PROFILE_KINDS} | {"other": 0.0}
    for event in events:
        name = event.key.removeprefix("aten::")
        kind = next((k for k, prefixes in PROFILE_KINDS if event.key.startswith("aten::")
                     and any(name == p or name.startswith(p + "_") or (p.startswith("_") and name.startswith(p))
                             for p in prefixes)), "other")
        totals[kind] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {kind: round(t / whole, 3) for kind, t in totals.items()}


def child_dorpo(data_dir: Path, out: Path, student: str, precision: str, profile: bool) -> dict:
    import torch

    from engine.student.precision import resolve_precision
    from trainer.config import TrainConfig
    from trainer.data import build_examples, collate
    from trainer.recipe import micro_batches, train
    from trainer.student import load_base_model, load_tokenizer

    torch.set_num_threads(os.cpu_count())
    chosen = resolve_precision(precision, "cpu")
    model = load_base_model(student, device=torch.device("cpu"), dtype=chosen.dtype)
    cfg = TrainConfig(student=student, max_steps=SIZE["steps"], batch_size=BATCH, lora_r=LORA["r"], lora_alpha=LORA["alpha"],
                      lora_dropout=LORA["dropout"], lora_targets=LORA["targets"], eval_fraction=0.0,
                      checkpoint_every=10_000, max_length=1024, run_dir=str(out / "run"), lam=0.1, warmup_steps=0,
                      precision=precision)
    config = model.config
    cpu_started = time.process_time()
    with RssSampler() as rss:
        if profile:
            steps_seen = []
            from torch.profiler import ProfilerActivity, profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                train(cfg, data_dir, progress=False, log=lambda m: None, base_model=model,
                      should_stop=lambda step: steps_seen.append(step) or step >= 2)
            RESULTS.mkdir(exist_ok=True)
            events = prof.key_averages()
            shares = profile_shares(events)
            (RESULTS / "dorpo_step_profile.txt").write_text(
                f"# torch profiler, 2 DORPO steps ({chosen.name}), SmolLM2-135M, LoRA r=16, batch 2 rows, "
                f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at the end\n"
                "# self CPU time by kind of work: "
                + ", ".join(f"{kind} {100 * share:.1f}%" for kind, share in shares.items()) + "\n"
                + events.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=55)
                + "\n" + prof.key_averages(group_by_input_shape=True).table(
                    sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=40, max_shapes_column_width=70))
            return {"profile_shares": shares}
        train(cfg, data_dir, progress=False, log=lambda m: None, base_model=model)
    cpu_seconds = time.process_time() - cpu_started
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    # the FLOPs of the exact batches each step trained on
    from engine.store import Snapshot

    tokenizer = load_tokenizer(student)
    examples, _ = build_examples(Snapshot(out / "run" / "snapshot"), tokenizer, cfg)
    lora_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model_flops = executed_flops = 0.0
    for step in range(1, SIZE["steps"]):
        batch = collate(micro_batches(examples, cfg, step), tokenizer.pad_token_id)
        m, e = step_flops(config, batch, lora_params, cfg.gradient_checkpointing)
        model_flops, executed_flops = model_flops + m, executed_flops + e
    timed = rows[1:]
    return {"tokens": sum(r["tokens"] for r in timed), "positions": sum(r["positions"] for r in timed),
            "seconds": sum(r["seconds"] for r in timed), "peak_rss_mb": rss.peak / 2**20,
            "cpu_seconds_total": cpu_seconds, "model_flops": model_flops, "executed_flops": executed_flops,
            "precision": rows[-1]["precision"]}


def child_trl(data_dir: Path, out: Path, student: str, bf16: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from engine.store import DatasetStore
    from engine.student.loader import load_base_model, load_tokenizer

    torch.set_num_threads(os.cpu_count())
    tokenizer = load_tokenizer(student)
    model = load_base_model(student, device=torch.device("cpu"))
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

    # TRL's defaults except what makes the runs comparable (rows, batch, steps, lr, λ) or quiet
    settings = dict(output_dir=str(out / "trl"), per_device_train_batch_size=BATCH, max_steps=SIZE["steps"], learning_rate=2e-4,
                    beta=0.1, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
                    seed=0)
    if not bf16:
        settings["bf16"] = False
    args = ORPOConfig(**settings)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules=LORA["targets"].split(","), task_type="CAUSAL_LM")
    trainer = ORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft, callbacks=[Timer()])
    # the same token count as DORPO: every non-padding token of both sequences of each row, in order
    order = list(trainer.get_train_dataloader())
    tokens_per_step = [int(b["chosen_attention_mask"].sum() + b["rejected_attention_mask"].sum()) for b in order[:SIZE["steps"]]]
    cpu_started = time.process_time()
    with RssSampler() as rss:
        trainer.train()
    return {"tokens": sum(tokens_per_step[1:SIZE["steps"]]), "seconds": sum(step_times[1:]), "peak_rss_mb": rss.peak / 2**20,
            "cpu_seconds_total": time.process_time() - cpu_started, "bf16": bool(args.bf16),
            "gradient_checkpointing": bool(args.gradient_checkpointing)}


def matmul_peaks() -> dict[str, float]:
    """Best of 5 NxN matmuls (N = 2048, --quick 256), bf16 and fp32, in GFLOP/s (all cores)."""
    import torch

    torch.set_num_threads(os.cpu_count())
    best = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        n = SIZE["matmul"]
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        top = 0.0
        for _ in range(5):
            started = time.perf_counter()
            a @ b
            top = max(top, 2 * n**3 / (time.perf_counter() - started))
        best[name] = top / 1e9
    return best


def run_child(which: str, tmp: Path, out: Path, precision: str, profile: bool = False) -> dict:
    out.mkdir(parents=True)
    subprocess.run([sys.executable, __file__, "--child", which, "--data", str(tmp / "data"), "--out", str(out),
                    "--student", str(tmp / SIZE["student"]), "--precision", precision]
                   + (["--profile"] if profile else []) + (["--quick"] if SIZE == SIZES["quick"] else []),
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=TRAINERS)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--student", default="")
    parser.add_argument("--precision", default="auto", help="DORPO's --precision (default: auto)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds of all three trainers (0 with --profile: only the profile table)")
    parser.add_argument("--profile", action="store_true", help="also write a profiler table of two DORPO steps")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the dataset and the converted student here and reuse them (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 steps on a tiny random student: checks "
                        "that the benchmark runs")
    args = parser.parse_args()
    if args.quick:
        SIZE.update(SIZES["quick"])
        args.rounds = min(args.rounds, 1)
    if args.rounds < 0 or (args.rounds == 0 and not args.profile):
        parser.error("--rounds must be at least 1 (0 only with --profile: the profile table alone)")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.child:
        if args.child == "dorpo":
            result = child_dorpo(args.data, args.out, args.student, args.precision, args.profile)
        else:
            result = child_trl(args.data, args.out, args.student, bf16=args.child == "trl_default")
        (args.out / "result.json").write_text(json.dumps(result))
        return
    rounds = []
    peaks = {"bf16": 0.0, "fp32": 0.0}
    loads = [load_average()]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        inputs = args.workdir or tmp
        if not (inputs / "data").exists():
            build_dataset(inputs / "data")
        if not (inputs / SIZE["student"]).exists():
            if args.quick:
                from benchmarks.tiny_student import tiny_student

                tiny_student(inputs / SIZE["student"])
            else:
                export_student(inputs / SIZE["student"])
        for name in ("data", SIZE["student"]):
            if inputs != tmp:
                (tmp / name).symlink_to(inputs.resolve() / name)
        for r in range(args.rounds):
            order = TRAINERS if r % 2 == 0 else TRAINERS[::-1]
            results = {}
            for which in order:
                for name, value in matmul_peaks().items():
                    peaks[name] = max(peaks[name], value)
                results[which] = run_child(which, tmp, tmp / f"{which}-{r}", args.precision)
                loads.append(load_average())
            rounds.append(results)
        shares = None
        if args.profile:
            shares = run_child("dorpo", tmp, tmp / "profile", args.precision, profile=True)["profile_shares"]

    if not rounds:  # --rounds 0 --profile: the profile table alone
        print(json.dumps({"profile": str(RESULTS / "dorpo_step_profile.txt"), "profile_shares": shares, "rounds": 0,
                          "load_average": [round(min(loads), 1), round(max(loads), 1)], "cpu_count": os.cpu_count()}))
        return

    def tps(res: dict) -> float:
        return res["tokens"] / res["seconds"]

    def per_round(f) -> list[float]:
        return [f(r) for r in rounds]

    def summary(values: list[float], digits: int = 3) -> tuple[float, list[float]]:
        return round(statistics.median(values), digits), [round(min(values), digits), round(max(values), digits)]

    d_tps = per_round(lambda r: tps(r["dorpo"]))
    ratio_default, ratio_default_range = summary(per_round(lambda r: tps(r["dorpo"]) / tps(r["trl_default"])))
    ratio_fp32, ratio_fp32_range = summary(per_round(lambda r: tps(r["dorpo"]) / tps(r["trl_fp32"])))
    mem_default, mem_default_range = summary(per_round(lambda r: r["dorpo"]["peak_rss_mb"] / r["trl_default"]["peak_rss_mb"]))
    mem_fp32, mem_fp32_range = summary(per_round(lambda r: r["dorpo"]["peak_rss_mb"] / r["trl_fp32"]["peak_rss_mb"]))
    cpu_ratio, _ = summary(per_round(lambda r: (r["dorpo"]["tokens"] / r["dorpo"]["cpu_seconds_total"])
                                     / (r["trl_default"]["tokens"] / r["trl_default"]["cpu_seconds_total"])))
    best = max(rounds, key=lambda r: tps(r["dorpo"]))["dorpo"]
    executed = best["executed_flops"] / best["seconds"] / 1e9
    model = best["model_flops"] / best["seconds"] / 1e9
    med = lambda key, who: round(statistics.median(r[who][key] for r in rounds))  # noqa: E731
    print(json.dumps({
        "dorpo_tokens_per_s": round(statistics.median(d_tps), 1),
        "trl_orpo_tokens_per_s": round(statistics.median(per_round(lambda r: tps(r["trl_fp32"]))), 1),
        "throughput_ratio": ratio_fp32,
        "dorpo_peak_rss_mb": med("peak_rss_mb", "dorpo"),
        "trl_orpo_peak_rss_mb": med("peak_rss_mb", "trl_fp32"),
        "memory_ratio": mem_fp32,
        "dorpo_gflops": round(executed, 1),
        "matmul_peak_gflops": round(peaks["fp32"], 1),
        "share_of_matmul_peak": round(executed / peaks["fp32"], 3),
        "trl_default_tokens_per_s": round(statistics.median(per_round(lambda r: tps(r["trl_default"]))), 1),
        "trl_default_peak_rss_mb": med("peak_rss_mb", "trl_default"),
        "throughput_ratio_vs_trl_default": ratio_default,
        "memory_ratio_vs_trl_default": mem_default,
        "matmul_peak_bf16_gflops": round(peaks["bf16"], 1),
        "share_of_bf16_peak": round(executed / peaks["bf16"], 3),
        "dorpo_model_gflops": round(model, 1),
        "model_flops_share_of_bf16_peak": round(model / peaks["bf16"], 3),
        "precision": rounds[0]["dorpo"]["precision"],
        "ranges_over_rounds": {"throughput_ratio_vs_trl_default": ratio_default_range,
                               "throughput_ratio": ratio_fp32_range,
                               "memory_ratio_vs_trl_default": mem_default_range, "memory_ratio": mem_fp32_range},
        "throughput_ratio_vs_trl_default_cpu_time": cpu_ratio,
        "dorpo_positions_per_token": round(best["positions"] / best["tokens"], 3),
        "rounds": args.rounds,
        "profile_shares": shares,
        "load_average": [round(min(loads), 1), round(max(loads), 1)],
        "cpu_count": os.cpu_count(),
        "targets": {"throughput_ratio_vs_trl_default_min": 3.0, "memory_ratio_vs_trl_default_max": 0.5,
                    "share_of_bf16_peak_min": 0.30, "throughput_ratio_min": 1.0, "memory_ratio_max": 1.0},
    }))


if __name__ == "__main__":
    main()
