"""Students: train a variant (resumable), export it to GGUF, evaluate it on the held-out tasks.

Training goes through `trainer.recipe.train` exactly as `shake train` does (a later round passes
`init_from` = the same variant and seed of the round before). Evaluation runs the exported GGUF on the
embedded llama.cpp backend, greedily, one answer per held-out task (`engine.tasks.attempt`); each
finished task is one line of ROUND/eval/<student>.jsonl, so a kill loses at most the task in flight.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

from engine.config import TeacherConfig
from engine.tasks.attempt import attempt
from engine.tasks.task import Task
from engine.teachers.embedded import EmbeddedTeacher

from .collect import read_log
from .profile import Profile, variant_settings

_BASE = {}


def base_model(student: str):
    """The base student (a `--student` spec), loaded once per process; every run trains a deep copy of it."""
    if student not in _BASE:
        import torch

        from trainer.student import load_base_model

        _BASE.clear()
        _BASE[student] = load_base_model(student, device=torch.device("cpu"), four_bit=False)
    return _BASE[student]


def train_variant(run_dir: Path, data_dir: Path, variant: str, seed: int, profile: Profile,
                  init_from: Path | None) -> Path:
    """Train (or finish training) one student; returns its run directory once DONE."""
    from trainer.config import TrainConfig
    from trainer.recipe import train

    if (run_dir / "DONE").exists():
        return run_dir
    resume = (run_dir / "config.json").exists()
    cfg = TrainConfig(student=profile.student, run_dir=str(run_dir), seed=seed, resume=resume, max_steps=profile.train_steps,
                      batch_size=profile.batch_size, lr=profile.lr, lora_r=profile.lora_r,
                      lora_alpha=2 * profile.lora_r, max_length=profile.max_length, eval_fraction=0.0,
                      checkpoint_every=4, warmup_steps=1, gradient_checkpointing=False,
                      init_from=str(init_from) if init_from else "", **variant_settings(variant))
    if resume:
        shutil.rmtree(run_dir / "adapter", ignore_errors=True)  # the save of a killed run may be partial
    train(cfg, data_dir, progress=True, log=lambda m: print(f"   {run_dir.name}: {m}", file=sys.stderr),
          base_model=copy.deepcopy(base_model(profile.student)))
    return run_dir


def quantize_in_place(gguf: Path, kind: str) -> None:
    """Replace an F32 GGUF by its llama.cpp quantization (`llama_model_quantize`, what `llama-quantize`
    runs). Q8_0 answers ~2x faster on a busy CPU; base and students are quantized alike."""
    import llama_cpp

    types = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}
    if not kind:
        return
    f32 = gguf.with_name("f32.gguf")
    gguf.rename(f32)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = types[kind]
    if llama_cpp.llama_model_quantize(str(f32).encode(), str(gguf).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {f32} to {kind}")
    f32.unlink()


def export_base(out_dir: Path, quant: str = "", student: str = "") -> Path:
    """The untrained student as a GGUF, written the way every trained student is (F32, then `quant`)."""
    from trainer.export import source_gguf
    from trainer.gguf_export import export_gguf
    from trainer.student import load_tokenizer

    gguf = out_dir / "student.gguf"
    if gguf.exists():
        return gguf
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = copy.deepcopy(base_model(student))
    model.hf_quantizer = None  # loaded from a GGUF, already dequantized to float32
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(tmp / "merged", safe_serialization=True)
    load_tokenizer(student).save_pretrained(tmp / "merged")
    export_gguf(tmp / "merged", tmp / "student.gguf", source_gguf(student))
    quantize_in_place(tmp / "student.gguf", quant)
    shutil.rmtree(tmp / "merged")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return gguf


def export_student_gguf(run_dir: Path, out_dir: Path, quant: str = "") -> Path:
    """`shake student export RUN --gguf` (then `quant`), into a temporary directory renamed when complete."""
    from trainer.export import export_student

    gguf = out_dir / "student.gguf"
    if gguf.exists():
        return gguf
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export_student(run_dir, tmp, gguf=True)
    quantize_in_place(tmp / "student.gguf", quant)
    shutil.rmtree(tmp / "merged")  # 0.5 GB each; the GGUF and the adapter are what is used
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return gguf


def release(gguf: Path) -> None:
    """Free the llama.cpp model of `gguf`. The embedded backend keeps every model it loaded for the
    life of the process (one per GGUF path); an experiment loads dozens of 0.5 GB students."""
    from engine.teachers.embedded import _LoadedModel

    path = str(Path(gguf).resolve())
    with _LoadedModel._cache_lock:
        for key in [k for k in _LoadedModel._cache if k[0] == path]:
            _LoadedModel._cache.pop(key).llm.close()


def gguf_teacher(gguf: Path, name: str = "student") -> EmbeddedTeacher:
    from .collect import THREADS

    return EmbeddedTeacher(TeacherConfig(name=name, model=str(gguf), n_ctx=2048, n_threads=THREADS["n"]))


def evaluate(gguf: Path, tasks: list[Task], log_path: Path, *, max_tokens: int, desc: str,
             backwards: bool = False) -> list[dict]:
    """One greedy answer per task, a line of `log_path` each. The log is read again before every task,
    so a second process (`--eval-helper`, going `backwards`) can work on the same student: each skips
    what the other finished, and a task both answered is logged twice with the same (greedy) answer."""
    from tqdm import tqdm

    done = read_log(log_path)
    todo = [t for t in tasks if t.id not in done][:: -1 if backwards else 1]
    if todo:
        teacher = gguf_teacher(gguf)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            for task in tqdm(todo, desc=desc, unit="task", file=sys.stderr, dynamic_ncols=True):
                if task.id in read_log(log_path):
                    continue  # the other process answered it
                row = attempt(teacher, task, max_tokens=max_tokens).as_dict()
                log.write(json.dumps(row) + "\n")
                log.flush()
        release(gguf)
        done = read_log(log_path)
    return [done[t.id] for t in tasks]


def match_check(run_dir: Path, gguf: Path, tasks: list[Task], max_tokens: int) -> dict:
    """Greedy answers of the exported GGUF (llama.cpp) and of the run itself (transformers), token by
    token: how many tasks agree exactly and how long the common prefix is."""
    from engine.agents import worker
    from engine.teachers.base import SamplingParams
    from engine.teachers.student import StudentTeacher

    hf = StudentTeacher(TeacherConfig(name="hf", backend="student", model=str(run_dir)))
    cpp = gguf_teacher(gguf, "gguf")
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens, top_logprobs=0)
    same, prefixes = 0, []
    for task in tasks:
        messages = worker.worker_messages(task.request, task.script)
        a = [t.token_id for t in hf.generate(messages, sampling).tokens]
        b = [t.token_id for t in cpp.generate(messages, sampling).tokens]
        prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        prefixes.append(prefix / max(len(a), len(b), 1))
        same += a == b
    hf.close()
    release(gguf)
    return {"tasks": len(tasks), "identical": same, "max_tokens": max_tokens,
            "mean_common_prefix_share": sum(prefixes) / len(prefixes) if prefixes else None}
