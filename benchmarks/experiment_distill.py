"""The distillation experiment (issue #12), resumable: rerun the same command to continue.

    .venv/bin/python benchmarks/experiment_distill.py --threads 1                 # full profile: 50 held-out tasks, 3 seeds, 3 rounds
    .venv/bin/python benchmarks/experiment_distill.py --threads 1 --eval-helper   # beside it: the second core evaluates
    .venv/bin/python benchmarks/experiment_distill.py --quick    # the pipeline in small (the test runs it)
    .venv/bin/python benchmarks/experiment_distill.py --profile medium --threads 1   # base vs the default student
    .venv/bin/python benchmarks/experiment_distill.py --profile medium --threads 1 --eval-helper  # beside it

Collects on the train tasks with the configured teacher and the automatic reviewer, trains SFT, ORPO,
KD-only and DORPO (λ 0.05, 0.1, 0.5) students on the same rows for each seed, evaluates the base model
and every student on the held-out tasks through the GGUF export on llama.cpp, then runs further rounds
(collect with the default student in side-chain and student-first mode, continue training from it).
Writes benchmarks/results/distill.json, distill.md and distill.png; prints one JSON object last.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.distill.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
