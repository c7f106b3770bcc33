"""benchmarks/bench_engine_vs_raw.py runs end to end on the real embedded teacher (one train task) and
ends with the JSON its docstring and issue #26 name; bad arguments are one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_engine_vs_raw.py"
KEYS = {"raw_pass_rate", "engine_pass_rate", "engine_over_raw", "per_category", "placeholder_rate", "noop_rate",
        "vacuous_reasoning_rate", "seconds_per_task", "seconds_to_first_proposal", "oracle_pass_rate",
        "choice_efficiency", "raw_best_of_n_pass_rate"}


@pytest.mark.slow
def test_one_task_through_every_variant_ends_with_the_documented_json(tmp_path, shake_env):
    done = subprocess.run([sys.executable, str(SCRIPT), "--split", "train", "--tasks", "1", "--n", "2", "--reviews", "1",
                           "--variants", "raw,raw_best_of_n,engine", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result)
    assert result["tasks"] == 1 and result["engine_pass_rate"]["n"] == 1
    assert result["placeholder_rate"]["k"] == 0 and result["noop_rate"]["k"] == 0
    assert (tmp_path / "train" / "engine.jsonl").exists()  # what a restart continues from


@pytest.mark.parametrize("argv", [["--variants", "nope"], ["--n", "0"], ["--tasks", "0"]])
def test_bad_arguments_are_one_line_and_exit_2(argv, tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), *argv, "--workdir", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
