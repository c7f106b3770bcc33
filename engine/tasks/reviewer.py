"""The automatic reviewer: plays the user of a headless session on a task of the suite.

For each proposal it runs the task's hidden checks in the sandbox and looks for the cheats small
models try first (`engine.tasks.cheat`); then it answers in words, as a user would type them:

- every check passes and nothing was dodged: an acceptance ("Looks good, thanks.");
- a cheat, a script the checks cannot even run, or no check passing: a Redo line naming what is
  wrong ("No, add(2, 3) should be 5, but it is -1. Start again.");
- some checks pass: a Further-edit line naming the first failure ("Almost: ...").

The phrasing is drawn from several wordings with a generator seeded by (task, cycle), so the
session's feedback analyzer has real sentences to label and a run is reproducible. The reviewer
knows which label it meant (`Review.label`); the episode compares it with the analyzer's.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from engine.config import RunnerConfig
from engine.tasks.cheat import find_cheat
from engine.tasks.harness import CheckReport, run_checks
from engine.tasks.task import Task

ACCEPT_LINES = (
    "Looks good, thanks.",
    "Perfect, that is exactly what I wanted.",
    "Great, it works now. Accepted.",
    "Yes, this is right. Thank you!",
    "That does it, good job.",
    "Works as I asked, I'm happy with it.",
)
REDO_LINES = (
    "No, this is wrong: {why}. Please start again.",
    "That doesn't work: {why}. Redo it from the original script.",
    "Not what I asked for. {Why}. Throw this away and try again.",
    "Wrong: {why}. Do it again from scratch.",
    "This is broken, {why}. Start over.",
)
EDIT_LINES = (
    "Almost there, but {why}. Please fix that too.",
    "Closer. One thing is still wrong: {why}.",
    "Good start, but {why}. Change that as well.",
    "Nearly right; {why}. Keep the rest and fix this.",
    "Most of it works now, only {why}.",
)


@dataclass(frozen=True)
class Review:
    label: str  # what the reviewer means: accepted | redo | further_edit
    feedback: str  # what it types
    passed: bool  # the hidden checks all pass and no cheat was found
    checks_passed: int
    checks_total: int
    cheat: str | None  # the structural check's finding
    problem: str | None  # why it is not accepted (the first failure), None when accepted


def _why(report: CheckReport) -> str:
    if report.problem:
        return report.problem
    failures = report.failures
    return failures[0].message.rstrip(".") if failures else "the checks found nothing to run"


def _rng(task: Task, cycle: int, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{task.id}:{cycle}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def phrase(kind: str, why: str, rng: random.Random) -> str:
    lines = {"accepted": ACCEPT_LINES, "redo": REDO_LINES, "further_edit": EDIT_LINES}[kind]
    line = rng.choice(lines)
    why = why.strip().rstrip(".")
    return line.format(why=why, Why=why[:1].upper() + why[1:])


class Reviewer:
    """Reviews proposals for one task. `seed` varies the wording between experiment runs."""

    def __init__(self, task: Task, runner: RunnerConfig | None = None, *, seed: int = 0) -> None:
        self.task = task
        self.runner = runner or RunnerConfig()
        self.seed = seed

    def review(self, script: str, cycle: int, *, base_script: str | None = None) -> Review:
        """Judge `script`, proposed in `cycle`. `base_script` is the script the proposal started from
        (the cheat check compares against it and against the task's starting script)."""
        report = run_checks(self.task.checks, script, self.runner)
        cheat = find_cheat(self.task.script, script)
        if cheat is None and base_script is not None and base_script != self.task.script:
            cheat = find_cheat(base_script, script)
        rng = _rng(self.task, cycle, self.seed)
        total = len(report.results)
        if cheat is None and report.passed:
            return Review("accepted", phrase("accepted", "", rng), True, report.n_passed, total, None, None)
        why = cheat or _why(report)
        label = "further_edit" if cheat is None and report.problem is None and report.n_passed > 0 else "redo"
        return Review(label, phrase(label, why, rng), False, report.n_passed, total, cheat, why)
