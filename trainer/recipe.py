"""The DORPO training recipe, top to bottom.

    snapshot the dataset (frozen, hashed) -> tokenize and align -> pick the precision
    -> load student (base in bf16/fp16/fp32, or 4-bit) + fp32 LoRA
    -> for each step: micro-batches -> one forward pass over prompt+chosen+rejected (prompt once)
       -> DORPO loss (fp32) -> backward -> clip -> AdamW step -> one JSON line of metrics
       -> checkpoint every N steps
    -> final adapter in RUN/adapter

Every file of a run is named by `engine.student.runs.RunDir`.

A resumed run reads the snapshot it started with (its hash is checked), restores the newest
complete checkpoint (adapter, optimizer, scheduler, RNG) and replays the same data order, so that
3 steps + resume + 3 steps ends where 6 straight steps end.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.store import DatasetStore, Snapshot
from engine.store.atomic import atomic_write_text
from engine.student.precision import resolve_precision
from engine.student.runs import RunDir
from trainer import allocator
from trainer.checkpoint import load_adapter_weights, restore, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import Example, build_examples, collate, split
from trainer.distributed import Dist, init_distributed, weights_digest
from trainer.errors import TrainError
from trainer.forward import batch_loss
from trainer.init_from import resolve_init
from trainer.student import add_lora, load_base_model, load_tokenizer, resolve_device, use_4bit


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def micro_batches(examples: list[Example], cfg: TrainConfig, index: int) -> list[Example]:
    """The `index`-th micro-batch of an endless, epoch-wise shuffled stream (a pure function of the seed)."""
    n = len(examples)
    out = []
    for slot in range(index * cfg.batch_size, (index + 1) * cfg.batch_size):
        epoch, pos = divmod(slot, n)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        out.append(examples[order[pos]])
    return out


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_metrics: dict
    adapter_dir: Path
    four_bit: bool = False


def default_run_dir(data_dir: Path, cfg: TrainConfig) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir).expanduser()
    from engine.student.runs import run_named

    return run_named(data_dir, cfg.name or _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")).path


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(
    cfg: TrainConfig,
    data_dir: Path,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
    should_stop: Callable[[int], bool] | None = None,
    base_model=None,
) -> TrainResult:
    """Run (or resume) a training run. `should_stop(step)` is asked after each step; when it says
    yes, a checkpoint is saved and the run ends early, resumable with `resume=True`. `base_model`
    is an already loaded student (same weights as `cfg.student`), to skip loading it again."""
    cfg.validate()
    allocator.return_freed_memory_eagerly()
    ddp = init_distributed(cfg.device)
    try:
        return _train(cfg, data_dir, ddp, log=log if ddp.main else (lambda m: None), progress=progress and ddp.main,
                      should_stop=should_stop, base_model=base_model)
    finally:
        ddp.close()


def _prepare_run(cfg: TrainConfig, data_dir: Path, run: RunDir, log) -> TrainConfig:
    """Rank 0: check or create the run directory and freeze the dataset snapshot."""
    if cfg.resume:
        if not run.started:
            raise TrainError(f"nothing to resume at {run.path}: no run was started there")
        saved = TrainConfig.from_dict(run.settings())
        saved.resume = True
        cfg = saved
        if Snapshot(run.snapshot).sha256 != json.loads(run.run_info.read_text())["snapshot_sha256"]:
            raise TrainError(f"the snapshot in {run.path} does not match the one the run started with")
        return cfg
    if run.path.exists() and any(run.path.iterdir()):
        raise TrainError(f"{run.path} already holds a run; pass --resume to continue it, or another --name")
    init = resolve_init(cfg, data_dir)  # a bad --init-from is refused before anything is written
    if init is not None:
        cfg = dataclasses.replace(cfg, student=init.student)  # a merged model becomes the base
    run.path.mkdir(parents=True, exist_ok=True)
    with DatasetStore(data_dir, writable=False, skip_bad=cfg.skip_bad) as store:
        info = store.snapshot(run.snapshot)
    for bad in info.bad_files:
        log(f"warning: skipped {bad.path}: {bad.problem}")
    if info.excluded:
        log(f"left out {info.excluded} row(s) the user excluded")
    atomic_write_text(run.config, json.dumps(cfg.to_dict(), indent=1))
    atomic_write_text(run.run_info, json.dumps({"snapshot_sha256": info.sha256, "rows": info.rows}))
    return cfg


def _train(cfg: TrainConfig, data_dir: Path, ddp: Dist, *, log, progress, should_stop, base_model) -> TrainResult:
    run = RunDir(default_run_dir(data_dir, cfg))
    run_dir = run.path
    problem = None
    if ddp.main:
        try:
            cfg = _prepare_run(cfg, data_dir, run, log)
        except TrainError as err:
            problem = str(err)
    problem, cfg = ddp.broadcast((problem, cfg))
    if problem:
        raise TrainError(problem)
    snapshot = Snapshot(run.snapshot)

    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and ddp.world > 1:
        device = torch.device("cuda", ddp.local_rank)
    four_bit = use_4bit(cfg, device)
    precision = resolve_precision(cfg.precision, device.type)
    phase = run.set_phase if ddp.main else (lambda what: None)
    phase("loading the tokenizer")
    tokenizer = load_tokenizer(cfg.student)
    phase("tokenizing the rows")
    examples, report = build_examples(snapshot, tokenizer, cfg)
    if report.skipped_too_long:
        log(f"warning: {report.skipped_too_long} rows are longer than --max-length {cfg.max_length} "
            f"(longest {report.longest_skipped} tokens) and were skipped")
    train_ex, eval_ex = split(examples, cfg.eval_fraction)
    updates_per_epoch = math.ceil(len(train_ex) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(updates_per_epoch * cfg.epochs))
    if report.user_chosen_left_out:
        log(f"{report.user_chosen_left_out} rows whose chosen the user wrote are left out (--model-chosen-only)")
    if report.context_labels:
        log(f"{report.context_labels} rows train on the soft labels of the cycle that produced their chosen "
            "(--soft-labels context)")
    if report.other_prompt:
        use = "used (--kd-other-prompt)" if cfg.kd_other_prompt else "not used: NLL on those chosen"
        log(f"{report.other_prompt} rows carry soft labels computed under another prompt than theirs; {use}")
    log(f"rows: {len(train_ex)} train, {len(eval_ex)} held out; soft labels on {report.with_logprobs} rows, "
        f"aligned share {report.aligned_share:.1%}; {total_steps} steps on {device.type}"
        f"{' with a 4-bit base (QLoRA)' if four_bit else ''}; {precision.name} ({precision.reason})")
    if precision.warning:
        log(f"warning: --precision {precision.name}: {precision.warning}")

    phase("loading the student model")
    if base_model is None:
        base_model = load_base_model(cfg.student, device=device, dtype=precision.dtype, four_bit=four_bit)
        allocator.trim()
    model = add_lora(base_model, cfg)
    init = resolve_init(cfg, data_dir)
    if init is not None and init.adapter is not None:
        load_adapter_weights(model, init.adapter)  # --init-from: continue the previous adapter
        log(f"starting from the adapter in {init.adapter}")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))
    # fp16 gradients underflow without a loss scale; for bf16 and fp32 the scaler passes through
    scaler = torch.amp.GradScaler(device.type, enabled=precision.name == "fp16")

    start_step = 0
    metrics_path = run.metrics
    if cfg.resume:
        ckpt = run.latest_checkpoint() if ddp.main else None
        ckpt = ddp.broadcast(ckpt)
        if ckpt is not None:
            restore(ckpt, model, optimizer, scheduler, scaler)
            start_step = ckpt.step
            log(f"resumed from {ckpt.path.name}")
        # Lines written after the checkpoint describe steps that will run again.
        kept = []
        if metrics_path.exists() and ddp.main:
            kept = [line for line in metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= start_step]
        if ddp.main:
            atomic_write_text(metrics_path, "".join(line + "\n" for line in kept))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc="dorpo", unit="step", file=sys.stderr, dynamic_ncols=True,
                   disable=False)  # shake's own bar, whatever TQDM_DISABLE says (engine/logs.py)
    run_state = {"snapshot_sha256": snapshot.sha256, "total_steps": total_steps}
    last: dict = {}
    metrics_file = metrics_path.open("a", encoding="utf-8") if ddp.main else None
    phase(f"step {start_step + 1}/{total_steps} running (the first step is the slowest)")
    try:
        for step in range(start_step, total_steps):
            started = time.perf_counter()
            totals: dict[str, list[float]] = {}
            tokens = positions = 0
            rows: list[str] = []
            for micro in range(cfg.grad_accum):
                # each rank takes its own slice of the global batch
                examples_now = micro_batches(train_ex, cfg, (step * cfg.grad_accum + micro) * ddp.world + ddp.rank)
                batch = collate(examples_now, tokenizer.pad_token_id).to(device)
                parts = batch_loss(model, batch, cfg)
                scaler.scale(parts.loss / cfg.grad_accum).backward()
                tokens += batch.n_tokens
                positions += batch.n_positions
                rows += [ex.row_id for ex in examples_now]
                for key, value in parts.as_dict().items():
                    totals.setdefault(key, []).append(float(value))
            ddp.average_gradients(params)
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm).item()
            lr = scheduler.get_last_lr()[0]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - started
            mine = {k: _nanmean(v) for k, v in totals.items()}
            everyone = ddp.gather((mine, tokens, rows, positions))
            last = {"step": step + 1,
                    **{k: _nanmean([parts_[k] for parts_, _, _, _ in everyone]) for k in mine},
                    "grad_norm": grad_norm, "lr": lr, "tokens": sum(t for _, t, _, _ in everyone),
                    "positions": sum(p for _, _, _, p in everyone),
                    "tokens_per_s": sum(t for _, t, _, _ in everyone) / seconds, "seconds": seconds,
                    "peak_memory_mb": peak_memory_mb(device), "total_steps": total_steps,
                    "precision": precision.name, "rows": [r for _, _, r, _ in everyone]}
            if metrics_file is not None:
                metrics_file.write(json.dumps(_json_safe(last)) + "\n")
                metrics_file.flush()
            if bar is not None:
                bar.set_postfix(loss=f"{last['loss']:.3f}", tok_s=f"{last['tokens_per_s']:.0f}")
                bar.update(1)
            stopping = ddp.broadcast(should_stop is not None and should_stop(step + 1))
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total_steps or stopping:
                if ddp.main:
                    save_checkpoint(run, step + 1, model, optimizer, scheduler, scaler, run_state)
                ddp.barrier()
            if stopping:
                log(f"stopped after step {step + 1}; continue with --resume")
                break
    finally:
        if metrics_file is not None:
            metrics_file.close()
    if bar is not None:
        bar.close()
    adapter_dir = run.adapter
    if last and last["step"] < total_steps:
        return TrainResult(run_dir, last["step"], last, adapter_dir, four_bit)
    digests = ddp.gather(weights_digest(params))
    if ddp.main:
        model.save_pretrained(adapter_dir)
        atomic_write_text(run.done, json.dumps(_json_safe({**last, "weights_sha256_by_rank": digests})) + "\n")
    ddp.barrier()
    return TrainResult(run_dir, total_steps, last, adapter_dir, four_bit)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
