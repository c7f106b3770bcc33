"""No benchmark rots unseen: every script in benchmarks/ runs its `--quick` profile here, in its own
process as a user runs it, and its last line of standard output is the JSON object its docstring
promises, with exactly the keys it declares (`RESULT_KEYS`)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# scripts checked elsewhere: the distillation experiment's --quick is tests/test_experiment_distill.py's,
# bench_engine_vs_raw.py's one-task run tests/test_bench_engine_vs_raw.py's; bench_teachers.py (issue #13's
# protocol benchmark, superseded by bench_engine_vs_raw.py) and bench_noncanonical.py have no check in
# the suite yet: each asks the real teacher for a dozen answers or more (minutes here)
ELSEWHERE = {"experiment_distill.py", "bench_engine_vs_raw.py", "bench_teachers.py", "bench_noncanonical.py"}


def declared(script: str, name: str = "RESULT_KEYS") -> set[str]:
    """A tuple of key names assigned at the top of a benchmark, read without importing it."""
    for node in ast.parse((BENCHMARKS / script).read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{script} declares no {name}")


def run_quick(script: str, *args: str, timeout: float = 900) -> dict:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, f"{script} --quick -> {done.returncode}\n{done.stderr[-4000:]}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"{script} --quick printed nothing\n{done.stderr[-2000:]}"
    return json.loads(lines[-1])


def scripts() -> set[str]:
    return {p.name for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}


QUICK = {  # script -> extra arguments of its --quick run
    "bench_store_append.py": (),
    "bench_logprob_capture.py": (),
    "bench_app.py": (),
    "bench_student_generation.py": (),
    "bench_train_memory.py": (),
    "bench_dorpo_vs_trl.py": (),
    "experiment_closing_loop.py": (),
    "task_difficulty.py": ("--work", "{tmp}/work", "--out", "{tmp}/difficulty.json"),
}


def test_every_benchmark_script_has_a_quick_check():
    assert scripts() - ELSEWHERE == set(QUICK)
    for script in QUICK:
        assert "--quick" in (BENCHMARKS / script).read_text(), script


def test_the_store_benchmark_runs_on_typed_rows():
    """It crashed on the typed session state ('dict' object has no attribute 'session_id')."""
    result = run_quick("bench_store_append.py")
    assert set(result) == declared("bench_store_append.py")
    assert (result["rows_small"], result["rows_large"]) == (20, 200) and result["append_ms_small"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(set(QUICK) - {"bench_store_append.py", "bench_train_memory.py",
                                                         "experiment_closing_loop.py"}))
def test_a_benchmark_prints_its_documented_json_last(script, tmp_path):
    args = [a.format(tmp=tmp_path) for a in QUICK[script]]
    result = run_quick(script, *args)
    assert set(result) == declared(script)


@pytest.mark.slow
def test_the_memory_benchmark_reports_every_configuration():
    result = run_quick("bench_train_memory.py")
    configs = {"fp32_glibc_default", "fp32_allocator_fix", "bf16_allocator_fix"}
    assert set(result) == configs and all(set(result[c]) == declared("bench_train_memory.py") for c in configs)


@pytest.mark.slow
def test_the_closing_loop_trains_and_evaluates_every_round():
    result = run_quick("experiment_closing_loop.py")
    assert set(result) == declared("experiment_closing_loop.py") and len(result["rounds"]) == 2
    for round_ in result["rounds"]:  # every round accepted a step, trained on it and evaluated the student
        assert set(round_) == declared("experiment_closing_loop.py", "ROUND_KEYS")
        assert round_["complete_rows"] > 0 and 0.0 <= round_["pass_rate"] <= 1.0
