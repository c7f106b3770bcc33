"""Closing the loop, measured: rounds of (collect → train → evaluate) with the embedded models.

Round 0 collects sessions with the teacher alone; every later round collects with the previous
round's student in side-chain mode (its worse answers become `rejected`, kind "student"), then
trains a fresh student on the whole dataset. A scripted user reviews: it accepts a proposal when the
task's own check passes on the script's output, and asks for a redo otherwise. After each round the
student answers the held-out tasks as the worker would (their first-cycle prompt); its pass rate is
the share whose script runs and passes the check.

Teacher and student are both SmolLM2-135M-Instruct (the bundled GGUF): the figures show the
machinery working end to end on a laptop CPU, not what a strong teacher would teach.
`--quick` runs the loop in small (one train task, one held-out task, one step per round, a tiny random
student from benchmarks/tiny_student.py, the first proposal accepted whatever it prints): the check that
the pipeline still runs (tests/test_benchmarks.py), not a measure.
Prints one JSON object as its last line: rows, student negatives and held-out pass rate per round
(`RESULT_KEYS`, and `ROUND_KEYS` in each round that trained).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (script, request, expected substring of stdout)
TASKS = [
    ('print("hello")\n', "Also print the word goodbye on a second line.", "goodbye"),
    ("x = 3\nprint(x)\n", "Print the square of x after x.", "9"),
    ("names = ['ada', 'bob']\n", "Print every name in the list, one per line.", "bob"),
    ("total = 0\n", "Add the numbers 1 to 4 to total and print total.", "10"),
    ('word = "shake"\n', "Print the word in upper case.", "SHAKE"),
    ("n = 5\n", "Print n times 2.", "10"),
    ("items = [3, 1, 2]\n", "Print the list sorted.", "[1, 2, 3]"),
    ('greeting = "hi"\n', "Print the greeting followed by an exclamation mark.", "hi!"),
]
HELD_OUT = [5, 6, 7]  # never collected: only the student's evaluation uses them
RESULT_KEYS = ("held_out_tasks", "rounds")
ROUND_KEYS = ("round", "accepted_steps", "rows", "complete_rows", "student_negatives", "train_steps", "pass_rate")


def write_config(home: Path, student_run: Path | None, worker_tokens: int = 400) -> None:
    lines = [
        "[teachers.smollm2]", 'backend = "embedded"',  # top-k and teacher switching: the defaults
        "[sampling.worker]", "temperature = 0.3", f"max_tokens = {worker_tokens}",
        "[session]", "max_steps = 1",
    ]
    if student_run is not None:
        lines += ["[teachers.student]", 'backend = "student"', f'model = "{student_run}"',
                  "[student]", 'mode = "side-chain"', 'teachers = ["student"]', "judge = true",
                  'kd_teacher = "smollm2"']
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def collect(home: Path, task_ids: list[int], log, *, reviews: int = 3, accept_any: bool = False) -> dict:
    from engine.agents.analyzer import Classification
    from engine.config import load_config
    from engine.errors import ShakeError
    from engine.session import Session
    from engine.store import DatasetStore
    from engine.teachers.pool import TeacherPool

    config = load_config()
    pool = TeacherPool(config)
    accepted = 0
    with DatasetStore(config.data_dir) as store:
        for i in task_ids:
            script, request, expected = TASKS[i]
            path = home / f"task{i}.py"
            path.write_text(script)
            try:
                session = Session.start(store, pool, config, path, request)
                session.plan(max_steps=1)
                for _ in range(reviews):  # up to three reviews per task
                    proposal = session.propose()
                    if accept_any or expected in proposal.run.stdout:
                        session.apply_feedback(Classification("accepted", "user", "correct"))
                        accepted += 1
                        break
                    session.apply_feedback(Classification("redo", "user", f"the output must contain {expected!r}"))
            except ShakeError as err:
                log(f"task {i}: {err}")
        stats = store.stats()
    pool.close()
    return {"accepted_steps": accepted, "rows": stats.rows, "complete_rows": stats.complete_rows,
            "student_negatives": stats.by_kind.get("student", 0)}


def train_student(home: Path, round_no: int, steps: int, student: str = "") -> Path:
    from engine.config import load_config
    from trainer.config import TrainConfig
    from trainer.recipe import train

    config = load_config()
    run = train(TrainConfig(student=student, name=f"round{round_no}", max_steps=steps, batch_size=2, eval_fraction=0.0, lr=2e-4,
                            lora_r=16, max_length=1536), config.data_dir, progress=False, log=lambda m: None)
    return run.run_dir


def evaluate(run_dir: Path, held_out: list[int], max_tokens: int = 300) -> float:
    from engine.agents import worker
    from engine.agents.parsing import parse_worker_output
    from engine.config import RunnerConfig, TeacherConfig
    from engine.errors import OutputFormatError
    from engine.execution import run_script
    from engine.teachers.base import SamplingParams
    from engine.teachers.student import StudentTeacher

    student = StudentTeacher(TeacherConfig(name="student", backend="student", model=str(run_dir)))
    passed = 0
    for i in held_out:
        script, request, expected = TASKS[i]
        gen = student.generate(worker.worker_messages(request, script),
                               SamplingParams(temperature=0.0, max_tokens=max_tokens, top_logprobs=0))
        try:
            candidate = parse_worker_output(gen.text).script
        except OutputFormatError:
            continue
        result = run_script(candidate, RunnerConfig())
        passed += result.ok and expected in result.stdout
    return passed / len(held_out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="training steps per round")
    parser.add_argument("--quick", action="store_true", help="the loop in small, on a tiny random student: checks "
                        "that it runs")
    args = parser.parse_args()
    if args.quick:
        args.steps = 1
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["SHAKE_CONFIG"] = str(home / "config.toml")
        os.environ["SHAKE_DATA"] = str(home / "data")
        train_tasks = [i for i in range(len(TASKS)) if i not in HELD_OUT][: 1 if args.quick else None]
        held_out = HELD_OUT[: 1 if args.quick else None]
        student = ""
        if args.quick:
            from benchmarks.tiny_student import tiny_student

            student = str(tiny_student(home / "tiny-student"))
        rounds = []
        student_run = None
        for round_no in range(args.rounds):
            write_config(home, student_run, 96 if args.quick else 400)
            collected = collect(home, train_tasks, log, reviews=1 if args.quick else 3, accept_any=args.quick)
            log(f"round {round_no}: collected {collected}")
            if collected["complete_rows"] == 0:
                rounds.append({"round": round_no, **collected, "pass_rate": None, "note": "no accepted step to train on"})
                continue
            student_run = train_student(home, round_no, args.steps, student)
            rate = evaluate(student_run, held_out, 16 if args.quick else 300)
            log(f"round {round_no}: held-out pass rate {rate:.2f}")
            rounds.append({"round": round_no, **collected, "train_steps": args.steps, "pass_rate": rate})
    print(json.dumps({"held_out_tasks": len(held_out), "rounds": rounds}))


if __name__ == "__main__":
    main()
