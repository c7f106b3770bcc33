"""Collection: the train tasks as headless sessions, the automatic reviewer as the user.

Round 0 uses the configured teachers alone. A later round collects with the previous round's
default student: the first half of its tasks in side-chain mode (the student answers every prompt
too; its worse answers become `rejected`), the second half student-first (the student is the
worker; after `switch_teacher_after` failed attempts the teacher takes over). The KD teacher
re-scores every chosen it did not write, so a student's accepted answer is never distilled from
its own log-probabilities.

Every finished task is one line of ROUND/collect.jsonl; a killed task resumes from its session.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from engine.config import load_config
from engine.errors import ShakeError
from engine.store import DatasetStore
from engine.store.schema import Origin
from engine.session.episode import run_episode
from engine.tasks.task import Task
from engine.teachers.pool import TeacherPool

TEACHER = "smollm2"


THREADS = {"n": 0}  # llama.cpp threads for every embedded model; 0: all cores (--threads)


def teacher_toml(teacher_model: str, worker_max_tokens: int, candidates: int = 0) -> list[str]:
    """The teacher, and answers capped at what a task needs (a step is one change to a small script);
    `candidates` the worker's per cycle (0: the product's default)."""
    model = f'model = "{teacher_model}"' if teacher_model else 'model = ""'
    return [f"[teachers.{TEACHER}]", 'backend = "embedded"', model, "top_logprobs = 20", f"n_threads = {THREADS['n']}",
            f"candidates = {candidates}",
            "[sampling.worker]", "temperature = 0.3", f"max_tokens = {worker_max_tokens}",
            "[sampling.planner]", "temperature = 0.2", "max_tokens = 128",
            "[sampling.lead]", "temperature = 0.2", "max_tokens = 160",
            "[session]", "switch_teacher_after = 3", "max_steps = 1",
            "[runner]", "timeout_s = 10.0"]


def write_config(path: Path, teacher_model: str, student_gguf: Path | None = None, mode: str = "off",
                 worker: str | None = None, worker_max_tokens: int = 512, candidates: int = 0) -> Path:
    """A config for one phase: `mode` side-chain or student-first with `student_gguf`; or, with
    `worker`, that teacher as the only worker (the evaluation's sessions)."""
    lines = teacher_toml(teacher_model, worker_max_tokens, candidates)
    if student_gguf is not None:
        lines += ["[teachers.student]", 'backend = "embedded"', f'model = "{student_gguf}"', "top_logprobs = 20",
                  f"n_threads = {THREADS['n']}"]
    if worker is not None:
        lines += ["[agents]", f'planner = ["{TEACHER}"]', f'lead = ["{TEACHER}"]', f'worker = ["{worker}"]',
                  f'analyzer = ["{TEACHER}"]']
    if mode != "off":
        lines += ["[student]", f'mode = "{mode}"', 'teachers = ["student"]', "judge = true", f'kd_teacher = "{TEACHER}"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_log(path: Path) -> dict[str, dict]:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["task_id"]] = row
    return done


def run_phase(tasks: list[Task], config_path: Path, data_dir: Path, workdir: Path, log_path: Path, *,
              max_reviews: int, seed: int, desc: str, extra: dict | None = None, user_fix: bool = False) -> list[dict]:
    """Run `tasks` as sessions with the config at `config_path`; one JSON line per finished task."""
    from tqdm import tqdm

    saved = {key: os.environ.get(key) for key in ("SHAKE_CONFIG", "SHAKE_DATA")}
    os.environ["SHAKE_CONFIG"], os.environ["SHAKE_DATA"] = str(config_path), str(data_dir)
    try:
        config = load_config()
    finally:  # the configuration is read once; leave the caller's environment as it was
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    done = read_log(log_path)
    todo = [t for t in tasks if t.id not in done]
    if todo:
        pool = TeacherPool(config)
        try:
            with DatasetStore(config.data_dir) as store, log_path.open("a", encoding="utf-8") as log:
                for task in tqdm(todo, desc=desc, unit="task", file=sys.stderr, dynamic_ncols=True):
                    try:
                        result = run_episode(store, pool, config, task, workdir, max_reviews=max_reviews, seed=seed,
                                             user_fix=user_fix)
                        row = {**result.as_dict(), **(extra or {})}
                    except ShakeError as err:  # a teacher error ends this task, not the experiment
                        row = {"task_id": task.id, "accepted": False, "error": str(err), **(extra or {})}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    done[task.id] = row
        finally:
            pool.close()
    return [done[t.id] for t in tasks]


def dataset_stats(data_dir: Path) -> dict:
    if not (Path(data_dir) / "sessions").exists():
        return {"rows": 0, "complete_rows": 0, "model_chosen_rows": 0, "context_labelled_rows": 0,
                "student_negatives": 0, "agent_rows": 0, "steps_accepted": 0}
    with DatasetStore(data_dir, writable=False) as store:
        stats = store.stats()
        rows = [r for r in store.rows() if r.chosen]
    return {"rows": stats.rows, "complete_rows": stats.complete_rows,
            "model_chosen_rows": sum(1 for r in rows if r.chosen.origin == Origin.MODEL),
            "context_labelled_rows": sum(1 for r in rows if r.chosen.context_logprobs is not None),
            "student_negatives": stats.by_kind.get("student", 0),
            "agent_rows": sum(1 for r in rows if not r.is_worker),
            "steps_accepted": len({(r.session_id, r.step_index) for r in rows if r.is_worker}),
            "by_kind": stats.by_kind}


def collect_round(round_dir: Path, tasks: list[Task], teacher_model: str, student_gguf: Path | None, *,
                  max_reviews: int, seed: int, worker_max_tokens: int = 512, user_fix: bool = False,
                  candidates: int = 0) -> dict:
    data_dir = round_dir / "data"
    workdir = round_dir / "tasks"
    log_path = round_dir / "collect.jsonl"
    if student_gguf is None:
        phases = [("teacher", tasks)]
    else:
        half = (len(tasks) + 1) // 2
        phases = [("side-chain", tasks[:half]), ("student-first", tasks[half:])]
    results = []
    for mode, part in phases:
        if not part:
            continue
        config = write_config(round_dir / f"config-{mode}.toml", teacher_model, student_gguf,
                              "off" if mode == "teacher" else mode, worker_max_tokens=worker_max_tokens,
                              candidates=candidates)
        results += run_phase(part, config, data_dir, workdir, log_path, max_reviews=max_reviews, seed=seed,
                             desc=f"{round_dir.name}: collect ({mode})", extra={"mode": mode}, user_fix=user_fix)
    accepted = [r for r in results if r.get("accepted")]
    asked = sum(r.get("analyzer_asked", 0) for r in results)
    user_fixed = sum(1 for r in accepted if r.get("user_fixed"))
    return {"tasks": len(results), "accepted": len(accepted), "model_accepted": len(accepted) - user_fixed,
            "user_fixed": user_fixed, "modes": {mode: len(part) for mode, part in phases if part},
            "mean_cycles_accepted": (sum(r["cycles"] for r in accepted) / len(accepted)) if accepted else None,
            "analyzer_agreement": (sum(r.get("analyzer_agreed", 0) for r in results) / asked) if asked else None,
            "cheats_seen": sum(r.get("cheats", 0) for r in results),
            **dataset_stats(data_dir)}
