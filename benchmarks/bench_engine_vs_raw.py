"""The engine against its own teacher asked directly (issue #26): does the system make the model stronger?

The same teacher on tasks of the suite (held-out by default), scored by their hidden checks:

  raw            the model asked directly: the script, "Change it as follows: <request>", "Reply with the
                 whole new script in one python block", greedy, nothing constrained, no engine
  raw_best_of_n  the same prompt, N answers (greedy, then N-1 sampled at 0.8); the first that runs counts
  engine         a headless session with the defaults (plan, lead, worker candidates, sandbox), the
                 automatic reviewer standing in for the user (its words through the real analyzer, up to
                 --reviews reviews), as `engine/session/episode.py` plays it
  engine_n1      the engine with one candidate a cycle (`[teachers.X] candidates = 1`): today's latency
                 and the worth of candidates

Reported, with 95% Wilson intervals: pass rates, `engine_over_raw`, per category, `oracle_pass_rate`
(a task counts when any candidate the engine sampled passes the hidden checks: the ceiling of
choosing) and `choice_efficiency` (engine / oracle); from the rows the engine stored and the
proposals it showed: `placeholder_rate` (instructions, steps and reasonings that echo the prompt),
`noop_rate` (proposals shown that change nothing), `vacuous_reasoning_rate`; `seconds_per_task` and
`seconds_to_first_proposal` (until the first candidate that runs is shown) for each engine variant.
The last line is one JSON object.

    .venv/bin/python benchmarks/bench_engine_vs_raw.py --quick                 # 16 held-out tasks, 2 a category
    .venv/bin/python benchmarks/bench_engine_vs_raw.py                         # all 68 held-out tasks
    .venv/bin/python benchmarks/bench_engine_vs_raw.py --split train --tasks 24  # developing prompts: train only

Each task's outcome is appended to WORKDIR/<variant>.jsonl as it finishes, so a restart continues.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_teachers import log, paired_difference, wilson  # noqa: E402
from engine.agents.cheat_guard import proposal_problem  # noqa: E402
from engine.agents.parsing import parse_worker_output  # noqa: E402
from engine.config import parse_config  # noqa: E402
from engine.errors import OutputFormatError  # noqa: E402
from engine.execution import run_script  # noqa: E402
from engine.prompts.builtin import fenced  # noqa: E402
from engine.prompts.echo import echo_reason  # noqa: E402
from engine.session.candidates import vacuous_reasoning  # noqa: E402
from engine.store import DatasetStore  # noqa: E402
from engine.tasks import CATEGORIES, SPLITS, check_task, tasks  # noqa: E402
from engine.session.episode import run_episode  # noqa: E402
from engine.teachers.base import SamplingParams  # noqa: E402
from engine.teachers.embedded import EmbeddedTeacher  # noqa: E402
from engine.teachers.pool import TeacherPool  # noqa: E402

VARIANTS = ("raw", "raw_best_of_n", "engine", "engine_n1")
SAMPLE_TEMPERATURE = 0.8
MAX_TOKENS = 768


def raw_messages(task) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{fenced(task.script)}\n\nChange it as follows: {task.request}\n\n"
                                        "Reply with the whole new script in one python block."}]


def pick_tasks(split: str, n: int | None, per_category: int | None, seed: int = 0) -> list:
    pool = tasks(split)
    if per_category:
        rng = random.Random(seed)
        chosen = []
        for category in CATEGORIES:
            group = [t for t in pool if t.category == category]
            chosen += rng.sample(group, min(per_category, len(group)))
        return chosen
    rng = random.Random(seed)
    rng.shuffle(pool)
    return pool[:n] if n else pool


def config_toml(data_dir: Path, threads: int, candidates: int | None) -> str:
    lines = [f'[paths]\ndata_dir = "{data_dir}"', "[teachers.smollm2]", 'backend = "embedded"', f"n_threads = {threads}"]
    if candidates is not None:
        lines.append(f"candidates = {candidates}")
    return "\n".join(lines) + "\n"


# -- the variants ------------------------------------------------------------------------------
def raw_task(teacher: EmbeddedTeacher, task, n: int, runner) -> dict:
    started = time.perf_counter()
    messages = raw_messages(task)
    first_passed = False
    chosen_passed: bool | None = None  # the first answer that runs, as raw_best_of_n takes it
    any_passed = False
    for i in range(n):
        sampling = SamplingParams(temperature=0.0 if i == 0 else SAMPLE_TEMPERATURE, max_tokens=MAX_TOKENS,
                                  seed=1000 + i, top_logprobs=0)
        gen = teacher.generate(messages, sampling, capture_logprobs=False)
        try:
            script = parse_worker_output(gen.text).script
        except OutputFormatError:
            continue
        passed = check_task(task, script, runner).passed
        first_passed = first_passed or (i == 0 and passed)
        any_passed |= passed
        if chosen_passed is None and run_script(script, runner).ok:
            chosen_passed = passed
    return {"task": task.id, "category": task.category, "raw": bool(first_passed), "raw_best_of_n": bool(chosen_passed),
            "raw_oracle": any_passed, "seconds": time.perf_counter() - started}


def engine_task(task, work: Path, threads: int, candidates: int | None, reviews: int) -> dict:
    data_dir = work / "data"
    config = parse_config(config_toml(data_dir, threads, candidates), work / "config.toml")
    config.data_dir = data_dir
    started = time.perf_counter()
    first_shown: float | None = None
    scripts: list[str] = []
    shown: list[tuple[str, str, str]] = []  # (base script, proposed script, reasoning)

    def emit(event) -> None:
        nonlocal first_shown
        if event.kind == "candidate" and event.data.get("script"):
            scripts.append(event.data["script"])
            if event.data.get("kind") == "ok" and first_shown is None:
                first_shown = time.perf_counter() - started

    with DatasetStore(data_dir) as store:
        pool = TeacherPool(config)
        try:
            result = run_episode(store, pool, config, task, work / "scripts", max_reviews=reviews, emit=emit,
                                 on_review=None)
            rows = list(store.rows(result.session_id))
            state = store.load_state(result.session_id)
        finally:
            pool.close()
    runner = config.runner
    oracle = any(check_task(task, s, runner).passed for s in dict.fromkeys(scripts))
    texts = [r.prompt.instruction for r in rows if r.is_worker] + [s.text for s in state.steps]
    reasonings = []
    for r in rows:
        for part in (r.chosen, r.rejected):
            if part is not None and part.origin != "user_edit" and part.reasoning:
                reasonings.append((part.reasoning, part.script))
    texts += [reasoning for reasoning, _ in reasonings]
    proposals = [(r.rejected.script, r.rejected.reasoning) for r in rows
                 if r.rejected is not None and r.rejected.kind in ("redo", "further_edit")]
    accepted = next((r.chosen for r in rows if r.chosen is not None and r.is_worker), None)
    if accepted is not None:
        proposals.append((accepted.script, accepted.reasoning))
    noops = sum(proposal_problem(task.script, script, task.request) is not None for script, _ in proposals)
    vacuous = sum(vacuous_reasoning(reasoning, task.script, script, task.request) for script, reasoning in proposals)
    return {"task": task.id, "category": task.category, "passed": result.accepted, "oracle": oracle or result.accepted,
            "candidates": len(scripts), "reviews": result.reviews, "stalled": result.stalled,
            "echo_fields": sum(echo_reason(t) is not None for t in texts if t), "fields": len([t for t in texts if t]),
            "proposals": len(proposals), "noop_proposals": noops, "vacuous_proposals": vacuous,
            "seconds": time.perf_counter() - started, "seconds_to_first_proposal": first_shown}


# -- bookkeeping -------------------------------------------------------------------------------
def done(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {r["task"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def rate(k: int, n: int) -> dict:
    return {"rate": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": wilson(k, n)}


def summarize(chosen: list, raw: dict[str, dict], engines: dict[str, dict[str, dict]], n: int) -> dict:
    ids = [t.id for t in chosen]
    out: dict = {"tasks": len(ids), "candidates_n": n}
    raw_rows = [raw[i] for i in ids if i in raw]
    out["raw_pass_rate"] = rate(sum(r["raw"] for r in raw_rows), len(raw_rows))
    out["raw_best_of_n_pass_rate"] = rate(sum(r["raw_best_of_n"] for r in raw_rows), len(raw_rows))
    out["raw_oracle_pass_rate"] = rate(sum(r["raw_oracle"] for r in raw_rows), len(raw_rows))
    for name, results in engines.items():
        rows = [results[i] for i in ids if i in results]
        if not rows:
            continue
        prefix = "engine" if name == "engine" else name
        out[f"{prefix}_pass_rate"] = rate(sum(r["passed"] for r in rows), len(rows))
        out[f"{prefix}_oracle_pass_rate"] = rate(sum(r["oracle"] for r in rows), len(rows))
        firsts = [r["seconds_to_first_proposal"] for r in rows if r["seconds_to_first_proposal"] is not None]
        out[f"{prefix}_seconds_per_task"] = round(sum(r["seconds"] for r in rows) / len(rows), 1)
        out[f"{prefix}_seconds_to_first_proposal"] = round(sorted(firsts)[len(firsts) // 2], 1) if firsts else None
        fields = sum(r["fields"] for r in rows)
        proposals = sum(r["proposals"] for r in rows)
        out[f"{prefix}_placeholder_rate"] = rate(sum(r["echo_fields"] for r in rows), fields)
        out[f"{prefix}_noop_rate"] = rate(sum(r["noop_proposals"] for r in rows), proposals)
        out[f"{prefix}_vacuous_reasoning_rate"] = rate(sum(r["vacuous_proposals"] for r in rows), proposals)
        paired = [i for i in ids if i in results and i in raw]
        if paired:
            out[f"{prefix}_minus_raw"] = paired_difference([int(raw[i]["raw"]) for i in paired],
                                                           [int(results[i]["passed"]) for i in paired])
    if "engine_pass_rate" in out:
        e, r, o = out["engine_pass_rate"]["rate"], out["raw_pass_rate"]["rate"], out["engine_oracle_pass_rate"]["rate"]
        out["engine_over_raw"] = round(e / r, 3) if r else None
        out["oracle_pass_rate"] = out["engine_oracle_pass_rate"]
        out["choice_efficiency"] = round(e / o, 3) if o else None
        for key in ("placeholder_rate", "noop_rate", "vacuous_reasoning_rate", "seconds_per_task",
                    "seconds_to_first_proposal"):
            out[key] = out[f"engine_{key}"]
    per_category = {}
    for category in CATEGORIES:
        in_cat = [t.id for t in chosen if t.category == category]
        entry = {"tasks": len(in_cat), "raw": rate(sum(raw[i]["raw"] for i in in_cat if i in raw),
                                                    sum(i in raw for i in in_cat))}
        for name, results in engines.items():
            entry[name] = rate(sum(results[i]["passed"] for i in in_cat if i in results),
                               sum(i in results for i in in_cat))
        per_category[category] = entry
    out["per_category"] = per_category
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 tasks a category (16)")
    parser.add_argument("--split", choices=SPLITS, default="held_out")
    parser.add_argument("--tasks", type=int, default=None, help="this many tasks (default: all of the split)")
    parser.add_argument("--per-category", type=int, default=None)
    parser.add_argument("--n", type=int, default=4, help="answers for raw_best_of_n")
    parser.add_argument("--reviews", type=int, default=3, help="the reviewer's answers per engine task")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/results/work/engine_vs_raw"))
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or args.n < 1 or args.reviews < 1 or (args.tasks is not None and args.tasks < 1):
        print(f"bench_engine_vs_raw: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
              if unknown else "bench_engine_vs_raw: --n, --reviews and --tasks must be at least 1", file=sys.stderr)
        return 2
    per_category = 2 if args.quick and args.per_category is None else args.per_category
    chosen = pick_tasks(args.split, args.tasks, per_category)
    work = args.workdir / args.split
    work.mkdir(parents=True, exist_ok=True)
    log(f"{len(chosen)} {args.split} tasks, variants {', '.join(variants)}; results under {work}")
    raw_path = work / "raw.jsonl"
    raw = done(raw_path)
    if {"raw", "raw_best_of_n"} & set(variants):
        from engine.config import TeacherConfig

        teacher = EmbeddedTeacher(TeacherConfig("smollm2", constrain="off", n_threads=args.threads))
        runner = parse_config("", work / "none.toml").runner
        for i, task in enumerate(chosen):
            if task.id in raw:
                continue
            raw[task.id] = raw_task(teacher, task, args.n, runner)
            with raw_path.open("a") as f:
                f.write(json.dumps(raw[task.id]) + "\n")
            log(f"raw {i + 1}/{len(chosen)} {task.id}: greedy {raw[task.id]['raw']}, best of {args.n} "
                f"{raw[task.id]['raw_best_of_n']}")
    engines: dict[str, dict[str, dict]] = {}
    for name in (v for v in variants if v.startswith("engine")):
        path = work / f"{name}.jsonl"
        results = done(path)
        for i, task in enumerate(chosen):
            if task.id in results:
                continue
            task_work = work / name / task.id
            results[task.id] = engine_task(task, task_work, args.threads, 1 if name == "engine_n1" else None,
                                           args.reviews)
            with path.open("a") as f:
                f.write(json.dumps(results[task.id]) + "\n")
            r = results[task.id]
            log(f"{name} {i + 1}/{len(chosen)} {task.id}: passed {r['passed']}, oracle {r['oracle']}, "
                f"{r['candidates']} candidates, {r['seconds']:.0f} s")
        engines[name] = results
    print(json.dumps(summarize(chosen, raw, engines, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
