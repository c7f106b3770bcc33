"""Means with 95% intervals, and the paired comparison against SFT.

Outcomes are a matrix `x[seed, task]` (1 = pass). The interval resamples both sources of noise, the
held-out tasks and the training seeds (a two-level bootstrap, percentile interval), because with a
few dozen tasks the task sample moves a pass rate as much as the seed does. The paired comparison
takes, per seed and task, the variant's outcome minus SFT's under the same seed, so task difficulty
cancels; its p-value is a sign-flip permutation test on the per-task mean differences (two-sided), an
exact paired test per task (with one seed it is McNemar's exact test on the discordant tasks, in its
permutation form). Beside the bootstrap, `wilson` gives the score interval of the pooled answers, which
holds at 0 and 1 passes where the bootstrap's collapses to a point.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP = 4000
PERMUTATIONS = 20000


def _resample(x: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    seeds, tasks = x.shape
    out = np.empty(n)
    for i in range(n):
        s = rng.integers(0, seeds, seeds)
        t = rng.integers(0, tasks, tasks)
        out[i] = x[np.ix_(s, t)].mean()
    return out


def mean_ci(x, *, seed: int = 0) -> tuple[float, list[float]]:
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.size == 0:
        return float("nan"), [float("nan"), float("nan")]
    draws = _resample(x, np.random.default_rng(seed), BOOTSTRAP)
    return float(x.mean()), [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def paired(x, reference, *, seed: int = 0) -> dict:
    """x and reference: [seed, task] outcomes with the same seeds and tasks."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    reference = np.atleast_2d(np.asarray(reference, dtype=float))
    diff = x - reference
    mean, ci = mean_ci(diff, seed=seed)
    per_task = diff.mean(axis=0)
    rng = np.random.default_rng(seed + 1)
    observed = abs(per_task.mean())
    signs = rng.choice([-1.0, 1.0], size=(PERMUTATIONS, per_task.size))
    null = np.abs((signs * per_task).mean(axis=1))
    p = float((1 + np.sum(null >= observed - 1e-12)) / (PERMUTATIONS + 1))
    return {"diff": mean, "ci95": ci, "p_value": p, "tasks_better": int(np.sum(per_task > 0)),
            "tasks_worse": int(np.sum(per_task < 0))}


def wilson(passes: int, n: int, z: float = 1.959963984540054) -> list[float]:
    """Wilson score 95% interval of `passes` out of `n` (seeds × tasks pooled, as if independent)."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = passes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]
