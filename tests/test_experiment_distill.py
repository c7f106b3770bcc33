"""The distillation experiment's --quick profile end to end (the pipeline, not the figures)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.distill import stats  # noqa: E402
from benchmarks.distill.profile import VARIANTS, variant_settings  # noqa: E402


def test_variants_are_the_losses_the_issue_names():
    assert variant_settings("sft") == {"no_kd": True, "lam": 0.0}  # NLL on chosen
    assert variant_settings("orpo") == {"no_kd": True, "lam": 0.1}  # TRL's ORPO: NLL + beta * OR
    assert variant_settings("kd") == {"no_kd": False, "lam": 0.0}
    assert variant_settings("dorpo_0.5") == {"no_kd": False, "lam": 0.5}
    assert set(VARIANTS) == {"sft", "orpo", "kd", "dorpo_0.05", "dorpo_0.1", "dorpo_0.5"}
    with pytest.raises(ValueError):
        variant_settings("dpo")


def test_intervals_and_the_paired_comparison():
    same = [[1, 0, 1, 0, 1, 1, 0, 0]] * 3
    mean, ci = stats.mean_ci(same)
    assert mean == 0.5 and ci[0] < 0.5 < ci[1]
    assert stats.mean_ci([[1] * 10])[1] == [1.0, 1.0]
    tie = stats.paired(same, same)
    assert tie["diff"] == 0 and tie["p_value"] == 1.0
    better = stats.paired([[1] * 30] * 3, [[0] * 30] * 3)
    assert better["diff"] == 1.0 and better["p_value"] < 0.001 and better["tasks_better"] == 30


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_quick_profile_runs_the_whole_pipeline_and_resumes(tmp_path):
    from benchmarks.distill.run import main

    work, out = tmp_path / "work", tmp_path / "out"
    assert main(["--quick", "--work", str(work), "--out-dir", str(out)]) == 0
    result = json.loads((out / "distill.json").read_text())
    assert {"held_out_tasks", "seeds", "rounds", "variants"} <= set(result)
    assert set(result["variants"]) == {"base", *VARIANTS}
    for name, figures in result["variants"].items():
        assert 0.0 <= figures["pass_at_1"] <= 1.0 and len(figures["ci95"]) == 2, name
        assert figures["ci95"][0] <= figures["pass_at_1"] <= figures["ci95"][1], name
    assert len(result["rounds"]) == 2
    if result["rounds"][0]["complete_rows"]:  # round 1 collects with the round-0 student
        assert result["rounds"][1]["modes"] == {"side-chain": 2, "student-first": 1}
    assert (out / "distill.png").read_bytes()[:4] == b"\x89PNG" and "| student |" in (out / "distill.md").read_text()
    # every stage left its resumable record: collection logs, finished runs, one eval line per task
    assert len((work / "round0" / "collect.jsonl").read_text().splitlines()) == 3
    trained = sorted(p.name for p in (work / "round0" / "runs").iterdir() if (p / "DONE").exists())
    if result["rounds"][0]["complete_rows"]:
        assert trained == sorted(f"{v}-s0" for v in VARIANTS)
        assert json.loads((work / "round1" / "runs" / "dorpo_0.1-s0" / "config.json").read_text())["init_from"] \
            == str(work / "round0" / "runs" / "dorpo_0.1-s0")
    assert not list(work.rglob("*.gguf.tmp")) and len(list(work.rglob("student.gguf"))) <= 2  # big files cleaned
    # a second run finds everything done and writes the same figures
    assert main(["--quick", "--work", str(work), "--out-dir", str(out)]) == 0
    again = json.loads((out / "distill.json").read_text())
    assert again["variants"] == result["variants"]


def test_the_medium_profile_and_its_table():
    """medium: base against the product's default student on >= 50 held-out tasks and 3 seeds, with the
    reviewer fixing what the teacher fails; its table says how many steps each side accepted."""
    from benchmarks.distill import report
    from benchmarks.distill.profile import DEFAULT_STUDENT, PROFILES

    medium = PROFILES["medium"]
    assert medium.held_out >= 50 and len(medium.seeds) >= 3 and medium.variants == (DEFAULT_STUDENT,)
    assert medium.user_fix and medium.rounds == 1 and medium.cycles_tasks == 0
    figures = {"pass_at_1": 0.1, "ci95": [0.05, 0.15], "well_formed": 0.8, "per_seed": {"0": 0.1}}
    paired = {"diff": 0.02, "ci95": [-0.01, 0.05], "p_value": 0.4}
    result = {"profile": medium.as_dict(), "held_out_tasks": 50, "seeds": [0, 1, 2], "round_variants": [DEFAULT_STUDENT],
              "minutes_last_invocation": 60.0,
              "rounds": [{"round": 0, "collected_with": "teacher", "tasks": 6, "accepted": 5, "model_accepted": 1,
                          "user_fixed": 4, "rows": 9, "complete_rows": 9, "student_negatives": 0, "steps_accepted": 5,
                          "variants": {DEFAULT_STUDENT: figures}}],
              "variants": {"base": figures, DEFAULT_STUDENT: {**figures, "vs_base": paired}}}
    table = report.markdown(result)
    assert "| 5 (1 / 4) |" in table and "+2.0 pts [-1.0, 5.0] | 0.40" in table and "s0 10.0%" in table
    assert "the reviewer fixes a script itself" in table


def test_the_full_profile_covers_what_the_issue_asks():
    """full: every variant on >= 50 held-out tasks and 3 seeds, >= 3 rounds, cycles and the GGUF check;
    rounds after the first follow fewer seeds only when `round_seeds` says so."""
    from benchmarks.distill.profile import FULL, QUICK

    assert set(FULL.variants) == set(VARIANTS) and FULL.held_out >= 50 and len(FULL.seeds) >= 3
    assert FULL.rounds >= 3 and FULL.cycles_tasks > 0 and FULL.match_tasks > 0
    assert FULL.seeds_of_round(0) == FULL.seeds and FULL.seeds_of_round(2) == FULL.round_seeds == (0,)
    assert QUICK.seeds_of_round(1) == QUICK.seeds  # no round_seeds: every round trains every seed
    from dataclasses import replace

    with pytest.raises(ValueError, match="starting with 0"):  # the default student (seed 0) collects later rounds
        replace(FULL, round_seeds=(1,))


def test_the_eval_helper_leaves_a_student_that_fails_twice_to_the_main_run(tmp_path, monkeypatch):
    # it used to retry a student whose evaluation raised every poll, for as long as the main run took
    import threading
    import time

    from benchmarks.distill import run
    from benchmarks.distill.profile import QUICK
    from engine.tasks import HELD_OUT, tasks

    gguf = tmp_path / "round0" / "students" / "sft-s0" / "student.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"not a model")
    calls = []

    def failing_evaluate(path, *args, **kwargs):
        calls.append(path)
        raise RuntimeError("the check report was cut off")

    monkeypatch.setattr(run, "evaluate", failing_evaluate)
    helper = threading.Thread(target=run.eval_helper, args=(tmp_path, tasks(HELD_OUT)[:1], QUICK),
                              kwargs={"poll_s": 0.01}, daemon=True)
    helper.start()
    time.sleep(0.5)  # ~50 polls
    (tmp_path / "DONE").write_text("{}\n")  # the main run finished: the helper stops
    helper.join(timeout=10)
    assert not helper.is_alive()
    assert calls == [gguf, gguf]


def test_the_training_benchmark_refuses_zero_rounds_without_the_profile():
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dorpo_vs_trl.py"
    done = subprocess.run([sys.executable, str(script), "--rounds", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--rounds must be at least 1" in done.stderr.splitlines()[-1]
