"""Small local teachers and the protocol (issue #13): malformed answers, runs, passes, the analyzer.

Task suite (engine/tasks, held-out split, a subset stratified by category; the hidden checks decide),
the embedded teacher, each condition adding to the one before:

  before    main's prompts (the lead and analyzer answer without reasoning), nothing constrained
  grammar   + the worker's and the planner's answers held to their grammars (same prompts)
  prompts   + the new prompts: reasoning first for the lead and the analyzer, every agent constrained
  demos     + demonstrations from `shake prompts optimize` on the suite's train split (--demos-dir, or
              --optimize to run it here first)

Each step runs `engine.prompts.trial` (lead -> worker -> sandbox -> hidden checks, up to --cycles
cycles, errors and failed checks fed back as in a session). The planner is asked once per task.

Analyzer: the test split of engine/prompts/data/feedback_labelled.jsonl (156 lines written as
users write them; its train split is what the channel scorer and the optimizer may learn from):
main's one-word prompt, the reasoning-first answer, and both scorers ("labels", "channel").

The last line is one JSON object: at least malformed_rate, run_rate, pass_rate (of the last
condition run), analyzer_accuracy, analyzer_unsure_rate (of the configured scorer), and every
condition and method with 95% intervals (Wilson; paired bootstrap for pass-rate differences).

    .venv/bin/python benchmarks/bench_teachers.py --quick          # < 5 minutes
    .venv/bin/python benchmarks/bench_teachers.py --tasks 24 --optimize
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.agents import analyzer  # noqa: E402
from engine.agents.call import generate, sampling_for  # noqa: E402
from engine.agents.parsing import LABELS, parse_label, parse_steps  # noqa: E402
from engine.agents.shapes import LEAD, PLANNER, WORKER  # noqa: E402
from engine.config import AnalyzerConfig, TeacherConfig, parse_config  # noqa: E402
from engine.prompts import builtin  # noqa: E402
from engine.prompts.book import AgentPrompt, PromptBook  # noqa: E402
from engine.prompts.saved import list_prompts  # noqa: E402
from engine.prompts.sources import shipped_feedback  # noqa: E402
from engine.prompts.trial import TrialTeachers, run_step, summarize, task_step  # noqa: E402
from engine.tasks import CATEGORIES, HELD_OUT, tasks  # noqa: E402
from engine.teachers.base import SamplingParams  # noqa: E402
from engine.teachers.embedded import EmbeddedTeacher  # noqa: E402

CONDITIONS = ("before", "grammar", "prompts", "demos")

# main's prompts before issue #13 (commit 16baa0e), word for word.
LEGACY_WORKER = (
    "You are a careful Python programmer. You get an instruction and a Python script. Rewrite the "
    "script so that it follows the instruction. Answer in this format:\n"
    "REASONING: one or two sentences on what you change and why.\n"
    "```python\n<the complete new script>\n```\n"
    "Always write the whole script in one code block, never a fragment, and nothing after the block."
)
LEGACY_LEAD = (
    "You are the project lead for changes to a Python script. Write one clear instruction for the "
    "programmer who will rewrite the script. Say exactly what to change. Do not write the code yourself. "
    "Answer with the instruction only, in at most five sentences."
)
LEGACY_PLANNER = (
    "You plan changes to a Python script. Split the change request into a few small steps that can "
    "each be done and checked on their own. Answer with a numbered list, one step per line, and nothing else."
)
LEGACY_ANALYZER = (
    "You classify a user's feedback on a change to a Python script. Answer with exactly one word:\n"
    "ACCEPTED - the user is satisfied with the change.\n"
    "REDO - the change is wrong and must be done again from the start.\n"
    "EDIT - the change is partly right but needs more changes."
)


def legacy_book() -> PromptBook:
    """main's prompts as AgentPrompts: their system text already holds the format, so the shapes add none."""
    def legacy(agent, text, shape):
        return AgentPrompt(agent, text, dataclasses.replace(shape, version=0, text_format="", json_format=""))
    return PromptBook({"worker": legacy("worker", LEGACY_WORKER, WORKER), "lead": legacy("lead", LEGACY_LEAD, LEAD),
                       "planner": legacy("planner", LEGACY_PLANNER, PLANNER)})


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- statistics --------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def paired_difference(a: list[int], b: list[int], rounds: int = 2000, seed: int = 0) -> dict:
    """b - a over the same tasks, with a 95% percentile-bootstrap interval."""
    rng = random.Random(seed)
    n = len(a)
    diffs = sorted(sum(b[i] - a[i] for i in (rng.randrange(n) for _ in range(n))) / n for _ in range(rounds))
    return {"difference": round((sum(b) - sum(a)) / n, 4),
            "ci95": [round(diffs[int(0.025 * rounds)], 4), round(diffs[int(0.975 * rounds) - 1], 4)]}


# -- the task suite ----------------------------------------------------------------------------
def task_subset(per_category: int, seed: int) -> list:
    rng = random.Random(seed)
    chosen = []
    for category in CATEGORIES:
        pool = tasks(HELD_OUT, category=category)
        chosen += rng.sample(pool, min(per_category, len(pool)))
    return chosen


def condition_setup(condition: str, free: EmbeddedTeacher, held: EmbeddedTeacher, demos_book: PromptBook | None):
    """(book, lead teacher, worker teacher, planner teacher) for a condition."""
    if condition == "before":
        return legacy_book(), free, free, free
    if condition == "grammar":
        return legacy_book(), free, held, held
    if condition == "prompts":
        return PromptBook(), held, held, held
    assert demos_book is not None
    return demos_book, held, held, held


def run_tasks(condition: str, chosen: list, book: PromptBook, lead_t, worker_t, planner_t, config, cycles: int) -> dict:
    outcomes, planner_fallbacks, planner_seconds = [], 0, 0.0
    for task in chosen:
        started = time.perf_counter()
        call = book.planner(task.request, task.script, config.session.max_steps)
        gen = generate(planner_t, call, sampling_for(config.sampling["planner"], seed=0, top_logprobs=0))
        planner_fallbacks += not parse_steps(gen.text, config.session.max_steps)
        planner_seconds += time.perf_counter() - started
        outcome = run_step(task_step(task, config), book, TrialTeachers(lead_t, worker_t), config, cycles=cycles)
        outcomes.append(outcome)
        log(f"  [{condition}] {task.id}: {'PASS' if outcome.passed else 'fail'} after {len(outcome.cycles)} cycle(s) "
            f"({', '.join('malformed' if c.malformed else 'ran' if c.ran else 'error' for c in outcome.cycles)}) "
            f"{outcome.seconds:.0f} s")
    s = summarize(outcomes)
    formed = s.worker_answers - s.malformed
    return {
        "tasks": s.steps, "passed": s.passed, "pass_rate": round(s.pass_rate, 4), "pass_ci95": wilson(s.passed, s.steps),
        "worker_answers": s.worker_answers, "malformed": s.malformed, "malformed_rate": round(s.malformed_rate, 4),
        "malformed_ci95": wilson(s.malformed, s.worker_answers), "run_rate": round(s.run_rate, 4),
        "run_ci95": wilson(s.proposals_run, formed), "cheat_flags": s.cheats, "lead_fallbacks": s.lead_fallbacks,
        "cycles_to_accept": None if s.cycles_to_accept is None else round(s.cycles_to_accept, 2),
        "seconds_per_accepted_step": None if s.seconds_per_accepted is None else round(s.seconds_per_accepted, 1),
        "seconds": round(s.seconds, 1), "planner_fallback_rate": round(planner_fallbacks / len(chosen), 4),
        "planner_seconds": round(planner_seconds, 1), "per_task": {o.step_id: int(o.passed) for o in outcomes},
    }


# -- the analyzer ------------------------------------------------------------------------------
def analyzer_report(name: str, truth: list[str], predicted: list[str], unsure: list[bool], seconds: float) -> dict:
    n = len(truth)
    right = sum(t == p for t, p in zip(truth, predicted))
    sure = [(t, p) for t, p, u in zip(truth, predicted, unsure) if not u]
    confusion = Counter(zip(truth, predicted))
    report = {
        "accuracy": round(right / n, 4), "accuracy_ci95": wilson(right, n), "unsure_rate": round(sum(unsure) / n, 4),
        "accuracy_when_sure": round(sum(t == p for t, p in sure) / len(sure), 4) if sure else None,
        "confusion": {t: {p: confusion[(t, p)] for p in LABELS} for t in LABELS}, "lines": n,
        "seconds_per_line": round(seconds / n, 2),
    }
    log(f"  analyzer [{name}]: accuracy {report['accuracy']} {report['accuracy_ci95']}, unsure {report['unsure_rate']}")
    return report


def run_analyzer(lines, free: EmbeddedTeacher, held: EmbeddedTeacher, config, methods: list[str],
                 book: PromptBook) -> dict:
    truth = [item.label for item in lines]
    out = {}
    if "before" in methods:
        started, predicted, unsure = time.perf_counter(), [], []
        for item in lines:
            messages = [{"role": "system", "content": LEGACY_ANALYZER},
                        {"role": "user", "content": f"Step: {item.step}\nFeedback: {item.feedback}\nOne word:"}]
            gen = free.generate(messages, SamplingParams(temperature=0.0, max_tokens=16))
            label = parse_label(gen.text)
            predicted.append(label or "further_edit")
            unsure.append(label is None)
        out["before"] = analyzer_report("before", truth, predicted, unsure, time.perf_counter() - started)
    scorers = [m for m in methods if m in ("cot", "labels", "channel")]
    if scorers:
        results = {m: ([], [], 0.0) for m in scorers}
        sampling = sampling_for(config.sampling["analyzer"], seed=0, top_logprobs=0)
        for item in lines:
            call = book.analyzer(item.feedback, item.step)
            started = time.perf_counter()
            gen = generate(held, call, sampling)
            generated = time.perf_counter() - started
            for method in scorers:
                started = time.perf_counter()
                settings = AnalyzerConfig(scoring="off" if method == "cot" else method,
                                          unsure_below=config.analyzer.unsure_below)
                if method == "channel":  # the channel scorer does not read the generated answer
                    generated_share = 0.0
                else:
                    generated_share = generated
                result = analyzer.classify(gen, item.feedback, teacher=held, call=call, settings=settings, form="grammar")
                predicted, unsure, seconds = results[method]
                predicted.append(result.label)
                unsure.append(result.source in ("unsure", "default"))
                results[method] = (predicted, unsure, seconds + generated_share + time.perf_counter() - started)
        for method, (predicted, unsure, seconds) in results.items():
            out[method] = analyzer_report(method, truth, predicted, unsure, seconds)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a profile under 5 minutes: 1 task, 12 feedback lines")
    parser.add_argument("--tasks", type=int, default=24, help="held-out tasks, spread over the 8 categories")
    parser.add_argument("--cycles", type=int, default=3, help="cycles per task before it counts as failed")
    parser.add_argument("--feedback", type=int, default=0, help="feedback lines of the test split (0: all)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--analyzer", default="before,cot,labels,channel", help="analyzer methods; empty: none")
    parser.add_argument("--demos-dir", type=Path, help="a data directory with saved versions from `shake prompts optimize`")
    parser.add_argument("--optimize", action="store_true", help="run the optimizer on the train split first (slow)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SHAKE_BENCH_THREADS", "0")),
                        help="llama.cpp threads (0: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.cycles, args.feedback = 1, 1, 12
        args.conditions = "before,prompts"
        args.analyzer = "before,channel"
    conditions = [c for c in args.conditions.split(",") if c]
    methods = [m for m in args.analyzer.split(",") if m]
    config = parse_config("", Path("bench"))
    free = EmbeddedTeacher(TeacherConfig("smollm2", constrain="off", n_threads=args.threads, top_logprobs=0))
    held = EmbeddedTeacher(TeacherConfig("smollm2", constrain="grammar", n_threads=args.threads, top_logprobs=0))
    started = time.perf_counter()
    result: dict = {"machine": f"{os.cpu_count()} cores, shared; embedded SmolLM2-135M-Instruct Q4_1",
                    "command": " ".join(sys.argv)}

    demos_book = None
    if "demos" in conditions:
        demos_dir = args.demos_dir
        if args.optimize:
            demos_dir = Path(tempfile.mkdtemp(prefix="shake-bench-prompts-"))
            result["optimize"] = optimize_here(config, held, demos_dir, args.seed)
        if demos_dir is None:
            log("no --demos-dir and no --optimize: the demos condition is skipped")
            conditions.remove("demos")
        else:
            saved = {s.prompt.agent: s.prompt for s in list_prompts(demos_dir)}  # newest per agent wins
            demos_book = PromptBook(saved)
            result["demos_versions"] = {agent: p.version for agent, p in saved.items()}

    if methods:
        lines = shipped_feedback("test")
        if args.feedback:
            rng = random.Random(args.seed)
            lines = sorted(rng.sample(lines, min(args.feedback, len(lines))), key=lambda item: LABELS.index(item.label))
        book = demos_book if (demos_book is not None and "analyzer" in result.get("demos_versions", {})) else PromptBook()
        log(f"analyzer: {len(lines)} lines, methods {', '.join(methods)}")
        result["analyzer"] = run_analyzer(lines, free, held, config, methods, book)
        default = config.analyzer.scoring if config.analyzer.scoring in result["analyzer"] else methods[-1]
        result["analyzer_method"] = default
        result["analyzer_accuracy"] = result["analyzer"][default]["accuracy"]
        result["analyzer_unsure_rate"] = result["analyzer"][default]["unsure_rate"]

    per_category = max(1, args.tasks // len(CATEGORIES)) if args.tasks >= len(CATEGORIES) else 0
    chosen = task_subset(per_category, args.seed) if per_category else task_subset(1, args.seed)[: args.tasks]
    result["tasks"] = {"split": HELD_OUT, "n": len(chosen), "ids": [t.id for t in chosen], "cycles": args.cycles}
    result["conditions"] = {}
    for condition in conditions:
        log(f"condition {condition}: {len(chosen)} tasks")
        book, lead_t, worker_t, planner_t = condition_setup(condition, free, held, demos_book)
        result["conditions"][condition] = run_tasks(condition, chosen, book, lead_t, worker_t, planner_t, config,
                                                    args.cycles)
    ran = list(result["conditions"])
    if ran:
        last = result["conditions"][ran[-1]]
        result.update(malformed_rate=last["malformed_rate"], run_rate=last["run_rate"], pass_rate=last["pass_rate"],
                      last_condition=ran[-1])
        first = result["conditions"][ran[0]]
        for condition in ran[1:]:
            a = [first["per_task"][t] for t in result["tasks"]["ids"]]
            b = [result["conditions"][condition]["per_task"][t] for t in result["tasks"]["ids"]]
            result["conditions"][condition][f"pass_rate_vs_{ran[0]}"] = paired_difference(a, b, seed=args.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


def optimize_here(config, teacher: EmbeddedTeacher, data_dir: Path, seed: int) -> dict:
    """`shake prompts optimize --source suite` for the lead and the worker, saved under `data_dir`."""
    from engine.prompts import optimize as opt
    from engine.prompts.sources import suite_sources
    from engine.prompts.saved import save_prompt
    from engine.store.store import now_iso

    settings = opt.OptimizeSettings(seed=seed)
    sources = suite_sources(config, 16, 8, random.Random(seed))
    book = PromptBook()
    search = opt.optimize_steps(sources.train_steps, sources.validation_steps, book, TrialTeachers(teacher, teacher),
                                config, settings, labelled=sources.labelled, progress=log)
    for agent, demos in search.best.demos.items():
        if demos:
            save_prompt(data_dir, book[agent].with_demos(demos), created_at=now_iso(), note=search.report())
    return search.report()


if __name__ == "__main__":
    sys.exit(main())
