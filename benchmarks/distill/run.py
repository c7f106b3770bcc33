"""The experiment's stages in order; every stage skips what a previous (killed) run finished."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from engine.tasks import HELD_OUT, TRAIN, tasks
from engine.store.atomic import atomic_write_text
from engine.tasks.task import Task
from engine.teachers.embedded import default_gguf_path

from . import report, stats
from .collect import THREADS, collect_round, read_log, run_phase, write_config
from .labels import top1_disagreement
from .profile import PROFILES, parse_variant, soft_label_source, with_overrides
from .students import evaluate, export_base, export_student_gguf, match_check, release, train_variant

ROOT = Path(__file__).resolve().parents[2]


def log(message: str) -> None:
    print(f"== {message}", file=sys.stderr, flush=True)


def spread(items: list[Task]) -> list[Task]:
    """Round-robin over templates, so that any prefix covers as many templates (and categories) as it can."""
    by_template: dict[str, list[Task]] = {}
    for task in items:
        by_template.setdefault(task.template, []).append(task)
    out: list[Task] = []
    depth = max(len(v) for v in by_template.values())
    for i in range(depth):
        out += [v[i] for v in by_template.values() if i < len(v)]
    return out


def train_order(first_templates: tuple[str, ...] = (), seed: int = 12) -> list[Task]:
    """Train tasks in a fixed order: shuffled, then spread over templates, so each round's slice differs;
    the tasks of `first_templates` go first (the quick profile starts where the teacher can succeed)."""
    train = tasks(TRAIN)
    random.Random(seed).shuffle(train)
    first = [t for t in train if t.template in first_templates]
    return spread(first) + spread([t for t in train if t.template not in first_templates]) if first else spread(train)


def rows_for(variant: str, summary: dict) -> int:
    """The complete rows a variant trains on: with `+ref` every one, else those whose chosen a model wrote."""
    return summary["complete_rows"] if parse_variant(variant)[2] else summary.get("model_chosen_rows", 0)


def rate(rows: list[dict] | None) -> float | None:
    return sum(r["passed"] for r in rows) / len(rows) if rows else None


def pooled(rounds: list[dict], part: str, whole: str) -> float | None:
    total = sum(r.get(whole, 0) for r in rounds)
    return sum(r.get(part, 0) for r in rounds) / total if total else None


def pooled_rate(work: Path, n_rounds: int) -> float | None:
    """The raw teacher's greedy pass@1 over every round's train tasks (None where it was not measured)."""
    rows = [r for k in range(n_rounds) for r in read_log(work / f"round{k}" / "raw_greedy.jsonl").values()]
    return rate(rows)


def outcomes(rows: list[dict], key: str = "passed") -> list[float]:
    return [1.0 if r[key] else 0.0 for r in rows]


def summarize(evals: dict[int, list[dict]]) -> dict:
    """Figures of one student kind from its evaluations by seed."""
    seeds = sorted(evals)
    passed = [outcomes(evals[s]) for s in seeds]
    formed = [outcomes(evals[s], "well_formed") for s in seeds]
    mean, ci = stats.mean_ci(passed)
    wf, wf_ci = stats.mean_ci(formed)
    answers = [x for row in passed for x in row]
    return {"pass_at_1": mean, "ci95": ci, "wilson95": stats.wilson(int(sum(answers)), len(answers)),
            "well_formed": wf, "well_formed_ci95": wf_ci,
            "per_seed": {str(s): sum(p) / len(p) for s, p in zip(seeds, passed)}, "_matrix": passed}


def cycles_for(name: str, gguf: Path, cyc_tasks: list[Task], work: Path, teacher_model: str, profile) -> dict:
    """Sessions on held-out tasks with the student as the only worker; the reviewer as the user.
    None when the profile measures no cycles."""
    if not cyc_tasks:
        return None
    base = work / "cycles" / name
    config = write_config(base / "config.toml", teacher_model, gguf, "off", worker="student",
                          worker_max_tokens=profile.eval_max_tokens)
    rows = run_phase(cyc_tasks, config, base / "data", base / "tasks", base / "episodes.jsonl",
                     max_reviews=profile.max_reviews, seed=0, desc=f"cycles to accept: {name}")
    release(gguf)
    accepted = [r for r in rows if r.get("accepted")]
    return {"tasks": len(rows), "accepted": len(accepted),
            "mean_cycles_accepted": sum(r["cycles"] for r in accepted) / len(accepted) if accepted else None,
            "mean_cycles_all": sum(r.get("cycles", 0) for r in rows) / len(rows) if rows else None}


def eval_helper(work: Path, held: list[Task], profile, poll_s: float = 20.0) -> int:
    """A second evaluating process: the base, then every student GGUF the main run has exported, each
    from its last task backwards (`students.evaluate` skips what either process finished). It stops
    when every evaluation the profile needs is complete, or when the main run wrote its results."""
    expected = 1 + len(profile.seeds) * len(profile.variants) + sum(
        len(profile.seeds_of_round(k)) * len(profile.round_variants) for k in range(1, profile.rounds))
    started = time.time()
    failures: dict[Path, int] = {}
    while True:
        pending = [(work / "students" / "base" / "student.gguf", work / "eval" / "base.jsonl")]
        for gguf in sorted(work.glob("round*/students/*/student.gguf")):
            if gguf.parent.name.endswith(".tmp"):  # an export being written
                continue
            pending.append((gguf, gguf.parent.parent.parent / "eval" / f"{gguf.parent.name}.jsonl"))
        logs = [work / "eval" / "base.jsonl", *work.glob("round*/eval/*.jsonl")]
        complete = sum(1 for p in logs if len(read_log(p)) >= len(held))
        result = work / "DONE"
        if complete >= expected or (result.exists() and result.stat().st_mtime > started):
            return 0
        todo = [(g, p) for g, p in pending if g.exists() and len(read_log(p)) < len(held) and failures.get(g, 0) < 2]
        if not todo:
            time.sleep(poll_s)
            continue
        gguf, log_path = todo[0]
        try:
            evaluate(gguf, held, log_path, max_tokens=profile.eval_max_tokens, backwards=True,
                     desc=f"helper: eval {gguf.parent.name}")
        except Exception as err:  # noqa: BLE001 - the main run deleted the GGUF it finished; look again
            log(f"helper: {gguf.parent.name}: {err}")
            failures[gguf] = failures.get(gguf, 0) + 1  # twice: leave it to the main run, which stops on it
            time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="experiment_distill.py", description="SFT, ORPO, KD and DORPO students "
                                     "on the same rows, measured on held-out tasks, over rounds (issue #12)")
    parser.add_argument("--quick", action="store_true", help="the small profile (pipeline check, < 10 min idle); "
                        "the same as --profile quick")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="the sizes (benchmarks/distill/"
                        "profile.py): full, medium (base vs the default student, 50 tasks, 3 seeds, 1 round), quick")
    parser.add_argument("--work", type=Path, default=None, help="state of the run (resumable); default "
                        "benchmarks/results/work/distill-PROFILE")
    parser.add_argument("--out-dir", type=Path, default=None, help="where distill.json/.md/.png go "
                        "(default benchmarks/results, or benchmarks/results/quick with --quick)")
    parser.add_argument("--teacher-model", default="", help="teacher GGUF (default: the bundled SmolLM2-135M)")
    parser.add_argument("--student", default=None, help="the base student, a GGUF file (default: the bundled "
                        "SmolLM2-135M); the test passes a tiny random one (benchmarks/tiny_student.py) with --quick")
    parser.add_argument("--seeds", type=int, default=None, help="number of training seeds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--held-out", type=int, default=None, help="held-out tasks (0: all 64)")
    parser.add_argument("--train-tasks", type=int, default=None, help="train tasks collected per round")
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--eval-helper", action="store_true", help="run next to the main run (same options): "
                        "evaluates the students it has exported, from the last task backwards, so a second core works")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for llama.cpp and torch (0: all cores); "
                        "1 is faster when other work keeps the cores busy")
    parser.add_argument("--report-only", action="store_true", help="write the report of what a run (perhaps still "
                        "running) has finished, without collecting, training or evaluating anything")
    args = parser.parse_args(argv)
    partial = args.report_only
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        THREADS["n"] = args.threads
    profile = PROFILES["quick" if args.quick else args.profile]
    profile = with_overrides(profile, seeds=tuple(range(args.seeds)) if args.seeds else None, rounds=args.rounds,
                             held_out=args.held_out, train_tasks_per_round=args.train_tasks,
                             train_steps=args.train_steps, student=args.student)
    work = args.work or ROOT / "benchmarks" / "results" / "work" / f"distill-{profile.name}"
    out_dir = args.out_dir or ROOT / "benchmarks" / "results" / ("quick" if profile.name == "quick" else "")
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    saved = work / "profile.json"
    if saved.exists() and json.loads(saved.read_text()) != json.loads(json.dumps(profile.as_dict())):
        print(f"{work} holds a run with other sizes ({saved}); pass another --work or the same options",
              file=sys.stderr)
        return 2
    saved.write_text(json.dumps(profile.as_dict(), indent=1))
    first_start = work / "STARTED"  # the run's wall time counts from here, over every invocation
    if not first_start.exists():
        first_start.write_text(f"{started}\n")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    held = spread(tasks(HELD_OUT))[: profile.held_out or None]
    order = train_order(profile.first_templates)
    needed = profile.train_tasks_per_round * profile.rounds
    if needed > len(order):
        print(f"{profile.rounds} rounds of {profile.train_tasks_per_round} tasks need {needed} train tasks; "
              f"the suite has {len(order)}", file=sys.stderr)
        return 2
    cyc_tasks = held[: profile.cycles_tasks] if profile.cycles_tasks else []
    log(f"profile {profile.name}: {len(held)} held-out tasks, {profile.rounds} rounds of "
        f"{profile.train_tasks_per_round} train tasks, seeds {list(profile.seeds)}, work in {work}")

    if args.eval_helper:  # the main run exports; the helper evaluates what exists
        return eval_helper(work, held, profile)
    if partial and len(read_log(work / "eval" / "base.jsonl")) < len(held):
        print(f"report only: {work} has not evaluated the base student yet; nothing to report", file=sys.stderr)
        return 2
    base_gguf = export_base(work / "students" / "base", profile.eval_quant, profile.student)

    def base_evaluation() -> list[dict]:  # after the rounds, so that an --eval-helper process can do it meanwhile
        return evaluate(base_gguf, held, work / "eval" / "base.jsonl", max_tokens=profile.eval_max_tokens,
                        desc="eval: base")


    teacher_gguf = Path(args.teacher_model) if args.teacher_model else default_gguf_path()
    fit = order[: profile.fit_tasks]  # round 0's first train tasks: what the students trained on (fitting)
    fits: dict[int, list[dict]] = {}
    cycles: dict[str, dict | None] = {}
    rounds, previous, collector = [], {}, None
    per_round: list[dict[str, dict[int, list[dict]]]] = []
    for k in range(profile.rounds):
        round_dir = work / f"round{k}"
        log(f"round {k}: collect with {'the teacher' if collector is None else 'the round ' + str(k - 1) + ' student'}")
        slice_ = order[k * profile.train_tasks_per_round:(k + 1) * profile.train_tasks_per_round]
        if partial and len(read_log(round_dir / "collect.jsonl")) < len(slice_):
            log(f"report only: round {k} is not collected yet; the report ends with round {k - 1}")
            break
        summary = collect_round(round_dir, slice_, args.teacher_model, collector, max_reviews=profile.max_reviews,
                                seed=k, worker_max_tokens=max(profile.eval_max_tokens, 320),
                                user_fix=profile.user_fix, candidates=profile.teacher_candidates)
        if collector is not None:
            release(collector)
        summary["teacher_system_pass_rate"] = summary["model_accepted"] / summary["tasks"] if summary["tasks"] else None
        if profile.raw_greedy and (not partial or len(read_log(round_dir / "raw_greedy.jsonl")) >= len(slice_)):
            # the same model asked once, greedily, on the same tasks: what the system adds
            raw = evaluate(teacher_gguf, slice_, round_dir / "raw_greedy.jsonl", max_tokens=max(profile.eval_max_tokens, 320),
                           desc=f"round {k}: raw teacher, greedy, train tasks")
            summary["raw_greedy_pass_rate"] = sum(r["passed"] for r in raw) / len(raw) if raw else None
        labels_file = round_dir / "soft_labels.json"
        if summary["complete_rows"] and not labels_file.exists() and not partial:
            atomic_write_text(labels_file, json.dumps(top1_disagreement(round_dir / "data", profile.student,
                                                                        profile.max_length)))
        if labels_file.exists():
            summary["soft_labels"] = json.loads(labels_file.read_text())
        names = profile.variants if k == 0 else profile.round_variants
        # With no chosen carrying context labels, a @context variant trains exactly its prompt variant (the
        # same rows, labels and seed): it is reported as that student, not trained and evaluated twice.
        same_as = {v: v.replace("@context", "") for v in names if "@context" in v
                   and not summary.get("context_labelled_rows") and v.replace("@context", "") in names}
        names = sorted(names, key=lambda v: v in same_as)  # (stable: the prompt variants first)
        summary["same_as"] = same_as
        evals: dict[str, dict[int, list[dict]]] = {}
        current = {}
        next_collector = None
        if summary["complete_rows"] and not partial:  # every student trained and exported first: an --eval-helper has work
            for variant in names:
                if not rows_for(variant, summary) or variant in same_as:
                    continue
                for seed in profile.seeds_of_round(k):
                    name, init = f"{variant}-s{seed}", previous.get(f"{variant}-s{seed}")
                    log(f"round {k}: train {name}" + (f" from {init.parent.parent.name}/{init.name}" if init else ""))
                    run = train_variant(round_dir / "runs" / name, round_dir / "data", variant, seed, profile, init)
                    if len(read_log(round_dir / "eval" / f"{name}.jsonl")) < len(held):
                        export_student_gguf(run, round_dir / "students" / name, profile.eval_quant)
        for variant in names:
            for seed in profile.seeds_of_round(k):
                name = f"{variant}-s{seed}"
                init = previous.get(name)
                keep = variant == profile.collector and seed == profile.seeds[0]
                if variant in same_as:
                    twin = same_as[variant]
                    if seed in evals.get(twin, {}):
                        evals.setdefault(variant, {})[seed] = evals[twin][seed]
                    current[name] = current.get(f"{twin}-s{seed}", init)
                    continue
                if not rows_for(variant, summary):  # nothing to train on: the student stays what it was
                    log(f"round {k}: no accepted step {variant} trains on; {name} carries over")
                    current[name] = init
                    evals.setdefault(variant, {})[seed] = per_round[-1][variant][seed] if k else base_evaluation()
                    if keep and k + 1 < profile.rounds:
                        next_collector = collector
                    continue
                eval_log = round_dir / "eval" / f"{name}.jsonl"
                done = len(read_log(eval_log)) >= len(held)
                if partial:  # what is finished, nothing more
                    if done:
                        evals.setdefault(variant, {})[seed] = [read_log(eval_log)[t.id] for t in held]
                        fit_log = round_dir / "fit" / f"{name}.jsonl"
                        if keep and fit and len(read_log(fit_log)) >= len(fit):
                            fits[k] = [read_log(fit_log)[t.id] for t in fit]
                    continue
                run = train_variant(round_dir / "runs" / name, round_dir / "data", variant, seed, profile, init)
                current[name] = run
                student_dir = round_dir / "students" / name
                wants_cycles = bool(cyc_tasks) and seed == profile.seeds[0] and (
                    variant in profile.cycles_variants if k == 0  # later rounds: the last one (time)
                    else variant in profile.round_variants and k == profile.rounds - 1)
                cycles_log = work / "cycles" / f"round{k}-{name}" / "episodes.jsonl"
                cycles_done = len(read_log(cycles_log)) >= len(cyc_tasks)
                gguf = student_dir / "student.gguf"
                match_file = work / "round0" / "match.json"
                wants_match = keep and k == 0 and profile.match_tasks > 0 and not match_file.exists()
                next_log = work / f"round{k + 1}" / "collect.jsonl"
                collects = keep and k + 1 < profile.rounds and len(read_log(next_log)) < profile.train_tasks_per_round
                if not done or collects or wants_match or (wants_cycles and not cycles_done):
                    gguf = export_student_gguf(run, student_dir, profile.eval_quant)
                evals.setdefault(variant, {})[seed] = evaluate(gguf, held, eval_log, max_tokens=profile.eval_max_tokens,
                                                               desc=f"round {k}: eval {name}")
                if wants_match:
                    log("check: the GGUF student answers as the transformers student does")
                    atomic_write_text(match_file, json.dumps(match_check(run, gguf, held[: profile.match_tasks],
                                                                         profile.match_tokens)))
                if wants_cycles:
                    cycles[f"{variant}@{k}"] = cycles_for(f"round{k}-{name}", gguf, cyc_tasks, work,
                                                          args.teacher_model, profile)
                if keep and profile.fit_tasks:
                    fits[k] = evaluate(gguf, fit, round_dir / "fit" / f"{name}.jsonl", max_tokens=profile.eval_max_tokens,
                                       desc=f"round {k}: fit {name} (train tasks)")
                if keep and k + 1 < profile.rounds:
                    next_collector = gguf  # (not written again once the next round is collected)
                if not collects and gguf.exists():
                    gguf.unlink()  # 0.5 GB; the eval log holds what is needed
        previous = {**previous, **{n: r for n, r in current.items() if r is not None}}
        if collector is not None and collector != next_collector:
            collector.unlink(missing_ok=True)  # its round is collected
        collector = next_collector
        per_round.append(evals)
        rounds.append({"round": k, "collected_with": "teacher" if "teacher" in summary["modes"] else
                       f"{profile.collector}-s{profile.seeds[0]} of round {k - 1} (side-chain, then student-first)", **summary,
                       "collector_fit_pass_rate": rate(fits.get(k)),
                       "variants": {v: {key: val for key, val in summarize(e).items() if key != "_matrix"}
                                    for v, e in evals.items()}})

    if not per_round or not per_round[0]:
        print(f"report only: {work} has no evaluated round-0 student yet; nothing to report", file=sys.stderr)
        return 2
    while rounds and not rounds[-1]["variants"]:  # a round collected but with no student evaluated yet
        rounds.pop()
        per_round.pop()
    complete = not partial or (len(rounds) == profile.rounds and all(
        len(per_round[0].get(v, {})) == len(profile.seeds) for v in profile.variants))
    base_eval = base_evaluation()
    cycles["base"] = cycles_for("base", base_gguf, cyc_tasks, work, args.teacher_model, profile) if not partial else None
    base = summarize({0: base_eval})
    base_fit = evaluate(base_gguf, fit, work / "fit" / "base.jsonl", max_tokens=profile.eval_max_tokens,
                        desc="fit: base (train tasks)") \
        if fit and (not partial or len(read_log(work / "fit" / "base.jsonl")) >= len(fit)) else None
    variants = {"base": {**{k: v for k, v in base.items() if k != "_matrix"}, "cycles": cycles.get("base"),
                         "soft_labels": "none", "fit_pass_rate": rate(base_fit)}}
    round0 = {v: summarize(e) for v, e in per_round[0].items()}
    for v, fig in round0.items():
        entry = {k: val for k, val in fig.items() if k != "_matrix"}
        sft = "sft+ref" if parse_variant(v)[2] else "sft"  # against SFT on the same rows
        if v != sft and sft in round0:
            entry["vs_sft"] = stats.paired(fig["_matrix"], round0[sft]["_matrix"])
            entry["p_vs_sft"] = entry["vs_sft"]["p_value"]
        entry["vs_base"] = stats.paired(fig["_matrix"], [base["_matrix"][0]] * len(fig["_matrix"]))
        entry["p_vs_base"] = entry["vs_base"]["p_value"]
        entry["soft_labels"] = soft_label_source(v)
        entry["references"] = parse_variant(v)[2]
        entry["cycles"] = cycles.get(f"{v}@0")
        variants[v] = entry
    last = profile.rounds - 1
    final = {v: {**{k: val for k, val in summarize(e).items() if k != "_matrix"}, "cycles": cycles.get(f"{v}@{last}")}
             for v, e in per_round[-1].items()}
    result = {
        "held_out_tasks": len(held), "held_out_task_ids": [t.id for t in held],
        "complete": complete,  # False: --report-only before the run finished (the rounds and variants so far)
        "teacher_system_pass_rate": pooled(rounds, "model_accepted", "tasks"),
        "raw_greedy_pass_rate": pooled_rate(work, profile.rounds),
        "seeds": list(profile.seeds), "rounds": rounds, "variants": variants, "variants_round": 0,
        "final_round": {"round": last, "variants": final},
        "round_variants": list(profile.round_variants),
        "match_check": json.loads((work / "round0" / "match.json").read_text())
        if (work / "round0" / "match.json").exists() else None,
        "teacher": args.teacher_model or "SmolLM2-135M-Instruct Q4_1 (bundled)",
        "student": (f"{profile.student}" if profile.student else "SmolLM2-135M-Instruct (float32 from the bundled GGUF)")
        + f", LoRA; evaluated as {profile.eval_quant.upper() or 'F32'} GGUF on llama.cpp",
        "profile": profile.as_dict(), "minutes_last_invocation": (time.time() - started) / 60,
        "minutes_since_first_start": (time.time() - float(first_start.read_text())) / 60,
        "load_average": os.getloadavg(),
    }
    paths = report.write(result, out_dir)
    if not partial:
        (work / "DONE").write_text(json.dumps({"finished": time.time()}) + "\n")  # an --eval-helper stops
    log(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(json.dumps({k: result[k] for k in ("held_out_tasks", "seeds", "teacher_system_pass_rate",
                                             "raw_greedy_pass_rate")} | {
        "rounds": [{"round": r["round"], "complete_rows": r["complete_rows"],
                    "teacher_system_pass_rate": r.get("teacher_system_pass_rate"),
                    "raw_greedy_pass_rate": r.get("raw_greedy_pass_rate"),
                    **{v: r["variants"][v]["pass_at_1"] for v in r["variants"]}} for r in rounds],
        "variants": {k: {"pass_at_1": v["pass_at_1"], "ci95": v["ci95"], "soft_labels": v.get("soft_labels"),
                         "p_vs_base": v.get("p_vs_base"), "p_vs_sft": v.get("p_vs_sft")}
                     for k, v in variants.items()}}))
    return 0
