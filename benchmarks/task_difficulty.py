"""How hard the task suite is for a teacher: its greedy pass@1 on every task, by category and split.

Each task is answered once, greedily, with the worker's prompt (the request as the instruction), and
judged by the automatic reviewer (hidden checks in the sandbox + the structural cheat check).
Resumable: each finished task is one line of WORK/difficulty-<teacher>.jsonl. Writes
benchmarks/results/task_difficulty.json and prints one JSON object as its last line.

    .venv/bin/python benchmarks/task_difficulty.py                # the embedded SmolLM2-135M teacher
    .venv/bin/python benchmarks/task_difficulty.py --model X.gguf # another GGUF
    .venv/bin/python benchmarks/task_difficulty.py --quick --work W --out O  # one task per split, 32 tokens

`--quick` is the check that the script still runs (tests/test_benchmarks.py), not a measure. The last
line holds the keys of `RESULT_KEYS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.distill.collect import read_log  # noqa: E402
from engine.config import TeacherConfig  # noqa: E402
from engine.store.atomic import atomic_write_text  # noqa: E402
from engine.tasks import build_suite  # noqa: E402
from engine.tasks.attempt import attempt  # noqa: E402
from engine.teachers.embedded import EmbeddedTeacher  # noqa: E402

RESULT_KEYS = ("teacher", "tasks", "per_template", "decoding", "max_tokens", "pass_at_1", "well_formed", "by_split",
               "by_category", "templates_solved_by_variants", "solved")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "results" / "work")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "task_difficulty.json")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all cores)")
    parser.add_argument("--per-template", type=int, default=0,
                        help="only the first N variants of each template (0: all); a quicker, stratified measure")
    parser.add_argument("--quick", action="store_true", help="one task of each split, 32 tokens: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_tokens = min(args.max_tokens, 32)
    from tqdm import tqdm

    teacher = EmbeddedTeacher(TeacherConfig(name="teacher", model=args.model, n_threads=args.threads))
    name = Path(args.model).stem if args.model else "smollm2-135m"
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / f"difficulty-{name}.jsonl"
    done = read_log(log)
    suite = [t for t in build_suite() if not args.per_template or int(t.id.rsplit("-", 1)[1]) < args.per_template]
    if args.quick:
        suite = [next(t for t in suite if t.split == split) for split in ("train", "held_out")]
    with log.open("a", encoding="utf-8") as out:
        for task in tqdm([t for t in suite if t.id not in done], desc=f"difficulty ({name})", unit="task",
                         file=sys.stderr, dynamic_ncols=True):
            row = attempt(teacher, task, max_tokens=args.max_tokens).as_dict()
            out.write(json.dumps(row) + "\n")
            out.flush()
            done[task.id] = row
    by: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for task in suite:
        row = done[task.id]
        for key in ((task.split, task.category), (task.split, "all"), ("all", task.category), ("all", "all")):
            by[key].append(row["passed"])
    share = lambda xs: round(sum(xs) / len(xs), 3)  # noqa: E731
    templates: dict[str, list[bool]] = defaultdict(list)
    for task in suite:
        templates[task.template].append(done[task.id]["passed"])
    result = {
        "teacher": name, "tasks": len(suite), "per_template": args.per_template or "all", "decoding": "greedy", "max_tokens": args.max_tokens,
        "pass_at_1": share(by[("all", "all")]),
        "well_formed": share([done[t.id]["well_formed"] for t in suite]),
        "by_split": {s: share(by[(s, "all")]) for s in ("train", "held_out")},
        "by_category": {c: share(v) for (s, c), v in sorted(by.items()) if s == "all" and c != "all"},
        "templates_solved_by_variants": {k: sum(1 for v in templates.values() if sum(v) == k)
                                         for k in range(max(len(v) for v in templates.values()) + 1)},
        "solved": sorted(t.id for t in suite if done[t.id]["passed"]),
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
