"""The distillation experiment's --quick profile end to end (the pipeline, not the figures)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.distill import stats  # noqa: E402
from benchmarks.distill.profile import VARIANTS, soft_label_source, variant_settings  # noqa: E402


def test_variants_are_the_losses_the_issue_names():
    hard = {"soft_labels": "prompt", "model_chosen_only": True}
    assert variant_settings("sft") == {"no_kd": True, "lam": 0.0, **hard}  # NLL on chosen
    assert variant_settings("orpo") == {"no_kd": True, "lam": 0.1, **hard}  # TRL's ORPO: NLL + beta * OR
    assert variant_settings("kd") == {"no_kd": False, "lam": 0.0, **hard}
    assert variant_settings("dorpo_0.5") == {"no_kd": False, "lam": 0.5, **hard}
    # the soft-label source and the reference fixes are spelled in the name, never implied
    assert variant_settings("dorpo_0.1@context+ref") == {"no_kd": False, "lam": 0.1, "soft_labels": "context",
                                                         "model_chosen_only": False}
    assert [soft_label_source(v) for v in ("sft+ref", "kd", "kd@context")] == ["none", "prompt", "context"]
    assert len(VARIANTS) == 20 and {"sft", "sft+ref", "kd@context", "dorpo_0.05@context+ref"} <= set(VARIANTS)
    for bad in ("dpo", "sft@context", "dorpo_x", "kd+ref@context"):
        with pytest.raises(ValueError, match="unknown variant"):
            variant_settings(bad)


def test_intervals_and_the_paired_comparison():
    same = [[1, 0, 1, 0, 1, 1, 0, 0]] * 3
    mean, ci = stats.mean_ci(same)
    assert mean == 0.5 and ci[0] < 0.5 < ci[1]
    assert stats.mean_ci([[1] * 10])[1] == [1.0, 1.0]
    tie = stats.paired(same, same)
    assert tie["diff"] == 0 and tie["p_value"] == 1.0
    better = stats.paired([[1] * 30] * 3, [[0] * 30] * 3)
    assert better["diff"] == 1.0 and better["p_value"] < 0.001 and better["tasks_better"] == 30
    low, high = stats.wilson(0, 68)
    assert low == 0.0 and 0.04 < high < 0.06  # 0 of 68 still says "up to ~5%"
    low, high = stats.wilson(34, 68)
    assert low < 0.5 < high and high - low == pytest.approx(0.23, abs=0.01)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quick_profile_runs_the_whole_pipeline_and_resumes(tmp_path):
    """The pipeline, not the figures: the real embedded teacher collects (the reviewer fixes what it fails,
    `user_fix`, so every round has rows to train on), and a tiny random student of the default student's
    architecture and tokenizer goes through training, merge, GGUF export and llama.cpp evaluation."""
    from benchmarks.distill.profile import QUICK
    from benchmarks.distill.run import main
    from benchmarks.tiny_student import tiny_student_gguf

    student = tiny_student_gguf(tmp_path / "tiny" / "student.gguf")
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--quick", "--student", str(student), "--work", str(work), "--out-dir", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "distill.json").read_text())
    assert {"held_out_tasks", "seeds", "rounds", "variants"} <= set(result)
    assert set(result["variants"]) == {"base", *QUICK.variants}
    for name, figures in result["variants"].items():
        assert 0.0 <= figures["pass_at_1"] <= 1.0 and len(figures["ci95"]) == 2, name
        assert figures["ci95"][0] <= figures["pass_at_1"] <= figures["ci95"][1], name
    assert len(result["rounds"]) == 2
    assert all(r["complete_rows"] > 0 for r in result["rounds"])  # every task accepted: the reviewer fixes it
    assert result["rounds"][1]["modes"] == {"side-chain": 2, "student-first": 1}  # round 1 collects with the student
    assert (out / "distill.png").read_bytes()[:4] == b"\x89PNG" and "| student |" in (out / "distill.md").read_text()
    # every stage left its resumable record: collection logs, finished runs, one eval line per task
    assert len((work / "round0" / "collect.jsonl").read_text().splitlines()) == 3
    trained = sorted(p.name for p in (work / "round0" / "runs").iterdir() if (p / "DONE").exists())
    same_as = result["rounds"][0]["same_as"]  # @context variants with no context labels: their twin
    assert set(same_as) <= {"kd@context+ref"} and all(same_as[v] == v.replace("@context", "") for v in same_as)
    with_refs = sorted(f"{v}-s0" for v in QUICK.variants if v.endswith("+ref") and v not in same_as)
    # every +ref variant trains (the reviewer fixes what fails); "sft" trains only on what a model wrote
    assert [t for t in trained if t.endswith("+ref-s0")] == with_refs
    model_rows = result["rounds"][0]["model_chosen_rows"]
    assert ("sft-s0" in trained) == (model_rows > 0)
    if not model_rows:  # nothing a model wrote: it is the base, said so by its figures
        assert result["variants"]["sft"]["pass_at_1"] == result["variants"]["base"]["pass_at_1"]
    collector = QUICK.collector
    assert json.loads((work / "round1" / "runs" / f"{collector}-s0" / "config.json").read_text())["init_from"] \
        == str(work / "round0" / "runs" / f"{collector}-s0")
    if same_as:  # reported as the student it is
        assert (result["rounds"][0]["context_labelled_rows"] == 0
                and result["variants"]["kd@context+ref"]["pass_at_1"] == result["variants"]["kd+ref"]["pass_at_1"])
    else:
        config = json.loads((work / "round0" / "runs" / "kd@context+ref-s0" / "config.json").read_text())
        assert config["soft_labels"] == "context" and not config["model_chosen_only"]
    config = json.loads((work / "round0" / "runs" / "kd+ref-s0" / "config.json").read_text())
    assert config["student"] == str(student) and config["soft_labels"] == "prompt" and not config["model_chosen_only"]
    # issue #22's figures: the system against the raw model on the same train tasks, and the soft labels
    assert {"teacher_system_pass_rate", "raw_greedy_pass_rate"} <= set(result)
    first = result["rounds"][0]
    assert 0 <= first["teacher_system_pass_rate"] <= 1 and 0 <= first["raw_greedy_pass_rate"] <= 1
    assert first["soft_labels"]["prompt"]["tokens"] > 0 and 0 <= first["soft_labels"]["prompt"]["top1_differs"] <= 1
    assert result["variants"]["kd@context+ref"]["soft_labels"] == "context"
    assert 0 <= result["variants"]["kd+ref"]["p_vs_base"] <= 1 and 0 <= result["variants"]["kd+ref"]["p_vs_sft"] <= 1
    assert not list(work.rglob("*.gguf.tmp")) and len(list(work.rglob("student.gguf"))) <= 2  # big files cleaned
    # a second run finds everything done and writes the same figures
    assert main(argv) == 0
    again = json.loads((out / "distill.json").read_text())
    assert again["variants"] == result["variants"] and result["complete"]
    # and a report of a finished run is the run's report
    assert main(argv + ["--report-only"]) == 0
    reported = json.loads((out / "distill.json").read_text())
    assert reported["complete"] and reported["variants"].keys() == result["variants"].keys()
    assert [r["round"] for r in reported["rounds"]] == [0, 1]


def test_a_report_of_a_run_with_nothing_evaluated_is_one_line_and_exit_2(tmp_path, capsys):
    from benchmarks.distill.run import main

    assert main(["--quick", "--work", str(tmp_path / "w"), "--out-dir", str(tmp_path / "o"), "--report-only"]) == 2
    assert "has not evaluated the base student yet" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_medium_profile_and_its_table():
    """medium: base against the product's default student on >= 50 held-out tasks and 3 seeds, with the
    reviewer fixing what the teacher fails; its table says how many steps each side accepted."""
    from benchmarks.distill import report
    from benchmarks.distill.profile import DEFAULT_STUDENT, PROFILES

    medium = PROFILES["medium"]
    assert medium.held_out >= 50 and len(medium.seeds) >= 3 and medium.variants == (f"{DEFAULT_STUDENT}+ref",)
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
    """full: every variant of issue #22 (each loss, each KD source, with and without the reference fixes)
    on all held-out tasks with 3 seeds, >= 3 rounds over every train task with best-of-N collection;
    proof: the same pipeline in one session's size, still on every held-out task and over 3 rounds."""
    from benchmarks.distill.profile import FULL, PROOF, QUICK
    from engine.tasks import TRAIN, tasks

    assert set(FULL.variants) == set(VARIANTS) and FULL.held_out == 0 and len(FULL.seeds) >= 3
    assert FULL.rounds >= 3 and FULL.rounds * FULL.train_tasks_per_round >= len(tasks(TRAIN)) - FULL.rounds
    assert FULL.teacher_candidates > 1 and FULL.raw_greedy and FULL.fit_tasks and FULL.user_fix
    assert FULL.cycles_tasks > 0 and FULL.match_tasks > 0 and FULL.seeds_of_round(2) == FULL.seeds
    assert PROOF.held_out == 0 and PROOF.rounds >= 3 and PROOF.teacher_candidates > 1
    assert {"sft", "kd", "kd@context", "dorpo_0.1", "dorpo_0.1@context", "sft+ref"} <= set(PROOF.variants)
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
