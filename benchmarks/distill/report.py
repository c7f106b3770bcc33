"""The experiment's outputs: distill.json, a Markdown table for README, and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

from engine.store.atomic import atomic_write_text


def _pct(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci or ci[0] != ci[0] else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _delta(paired: dict | None) -> tuple[str, str]:
    if not paired:
        return "", ""
    return f"{100 * paired['diff']:+.1f} pts{_ci(paired['ci95'])}", f"{paired['p_value']:.2f}"


def markdown(result: dict) -> str:
    p = result["profile"]
    sft = "sft" in result["variants"]
    lines = [
        f"Held-out tasks: {result['held_out_tasks']}; seeds: {len(result['seeds'])}; rounds: {len(result['rounds'])}"
        + (f" (after round 0, seed {', '.join(map(str, p['round_seeds']))} only)" if p.get("round_seeds")
           and len(result["rounds"]) > 1 else "") + "; "
        f"variants trained on round 0's {result['rounds'][0]['complete_rows']} rows "
        f"({result['rounds'][0]['steps_accepted']} accepted steps). Greedy pass@1 with 95% intervals "
        f"(bootstrap over tasks and seeds); Δ paired by seed and task, p from a sign-flip permutation test.",
        "",
        "| student | soft labels | pass@1 | Wilson 95% | per seed | well-formed | Δ pass@1 vs base | p | "
        + ("Δ pass@1 vs SFT | p | " if sft else "") + "cycles to accept (accepted / tried) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | " + ("--- | --- | " if sft else "") + "--- |",
    ]
    for name, v in result["variants"].items():
        delta, pval = _delta(v.get("vs_sft"))
        delta_base, pval_base = _delta(v.get("vs_base"))
        seeds = ", ".join(f"s{s} {_pct(x)}" for s, x in v.get("per_seed", {}).items())
        cyc = v.get("cycles")
        cycles = "–" if not cyc else (f"{cyc['mean_cycles_accepted']:.1f} ({cyc['accepted']}/{cyc['tasks']})"
                                      if cyc["mean_cycles_accepted"] is not None else f"– (0/{cyc['tasks']})")
        wilson = _ci(v.get("wilson95")).strip() or "–"
        lines.append(f"| {name} | {v.get('soft_labels', '–')} | {_pct(v['pass_at_1'])}{_ci(v['ci95'])} | {wilson} | "
                     f"{seeds} | {_pct(v['well_formed'])} | "
                     f"{delta_base} | {pval_base} | " + (f"{delta} | {pval} | " if sft else "") + f"{cycles} |")
    lines += ["", "| round | collected with | tasks | teacher system pass (train) | raw greedy pass (train) | "
                  "accepted (by the model / fixed by the user) | rows (complete) | student negatives | "
                  "top-1 differs (prompt / context) | " + " | ".join(f"{v} pass@1" for v in result["round_variants"]) + " |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | "
              + " | ".join("---" for _ in result["round_variants"]) + " |"]
    for r in result["rounds"]:
        cells = [f"{_pct(r['variants'][v]['pass_at_1'])}{_ci(r['variants'][v]['ci95'])}" if v in r["variants"] else "–"
                 for v in result["round_variants"]]
        accepted = f"{r['accepted']} ({r.get('model_accepted', r['accepted'])} / {r.get('user_fixed', 0)})"
        labels = r.get("soft_labels") or {}
        differs = " / ".join(_pct((labels.get(src) or {}).get("top1_differs")) for src in ("prompt", "context"))
        lines.append(f"| {r['round']} | {r['collected_with']} | {r['tasks']} | {_pct(r.get('teacher_system_pass_rate'))} | "
                     f"{_pct(r.get('raw_greedy_pass_rate'))} | {accepted} | {r['rows']} "
                     f"({r['complete_rows']}) | {r['student_negatives']} | {differs} | " + " | ".join(cells) + " |")
    for r in result["rounds"]:
        for twin, of in (r.get("same_as") or {}).items():
            lines += ["", f"Round {r['round']}: `{twin}` is `{of}`: no chosen of the round carries context soft labels "
                          "(none is a teacher's answer from a later cycle than its step's first), so both train on "
                          "the same rows with the same labels."]
    steps = f"{p['train_steps']} steps" if p["train_steps"] else "one epoch"
    lines += ["", f"Profile `{p['name']}`: {p['train_tasks_per_round']} train tasks per round, {steps} of "
                  f"{p['batch_size']} rows per step, LoRA r={p['lora_r']}, lr {p['lr']}, answers capped at "
                  f"{p['eval_max_tokens']} tokens" + (f", evaluated as the {p['eval_quant'].upper()} quantization of each "
                                                        "GGUF export" if p.get("eval_quant") else "")
                  + ("; the reviewer fixes a script itself (the reference, as the user's edit) when the "
                     "teacher's last try fails" if p.get("user_fix") else "") + "; "
                  + (f"from the first start to this report: {result['minutes_since_first_start']:.0f} min "
                     "(every invocation and any pause between them); " if "minutes_since_first_start" in result else "")
                  + f"the last invocation took {result['minutes_last_invocation']:.0f} min."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names = list(result["variants"])
    means = [100 * result["variants"][n]["pass_at_1"] for n in names]
    lows = [m - 100 * result["variants"][n]["ci95"][0] for m, n in zip(means, names)]
    highs = [100 * result["variants"][n]["ci95"][1] - m for m, n in zip(means, names)]
    colours = ["#888888" if n == "base" else "#4477aa" if n.split("+")[0].split("@")[0] in ("sft", "orpo", "kd")
               else "#cc6677" for n in names]
    left.bar(names, means, yerr=[lows, highs], capsize=4, color=colours)
    left.set_ylabel("held-out pass@1 (%)")
    right.set_ylabel("pass rate (%)")
    left.set_title(f"Round 0: every variant on the same rows ({len(result['seeds'])} seeds)")
    left.tick_params(axis="x", rotation=30)
    for v in result["round_variants"]:
        xs, ys, lo, hi = [], [], [], []
        for r in result["rounds"]:
            if v in r["variants"]:
                fig_v = r["variants"][v]
                xs.append(r["round"])
                ys.append(100 * fig_v["pass_at_1"])
                lo.append(100 * fig_v["ci95"][0])
                hi.append(100 * fig_v["ci95"][1])
        right.plot(xs, ys, marker="o", label=v)
        right.fill_between(xs, lo, hi, alpha=0.2)
    right.axhline(100 * result["variants"]["base"]["pass_at_1"], color="#888888", linestyle="--", label="base")
    system = [(r["round"], r.get("teacher_system_pass_rate")) for r in result["rounds"]]
    if any(y is not None for _, y in system):  # the collecting system on its train tasks, beside the student
        right.plot([x for x, y in system if y is not None], [100 * y for _, y in system if y is not None],
                   marker="s", color="#228833", label="teacher system (train tasks)")
    raw = [(r["round"], r.get("raw_greedy_pass_rate")) for r in result["rounds"]]
    if any(y is not None for _, y in raw):
        right.plot([x for x, y in raw if y is not None], [100 * y for _, y in raw if y is not None],
                   marker="^", color="#999933", linestyle=":", label="raw teacher greedy (train tasks)")
    right.set_xlabel("round")
    right.set_xticks(range(len(result["rounds"])))
    right.set_title("Rounds: collect with the student, continue training")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict, out_dir: Path, stem: str = "distill") -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "png": out_dir / f"{stem}.png"}
    atomic_write_text(paths["json"], json.dumps(result, indent=1) + "\n")
    atomic_write_text(paths["markdown"], markdown(result))
    plot(result, paths["png"])
    return paths
