"""Where `shake prompts optimize` learns from: the task suite's train split, or the user's dataset.

Both give steps to bootstrap from and held-out steps to score on (split by step, never by cycle),
labelled worker demonstrations (a reference solution, or the answer the user accepted, under its
prompt), and labelled feedback lines for the analyzer.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from engine.agents.analyzer import LABELLED_FEEDBACK
from engine.config import Config
from engine.prompts import builtin
from engine.prompts.book import Demo
from engine.prompts.optimize import LabelledFeedback, labelled_task_demos
from engine.prompts.trial import TrialStep, accepted_step, task_step
from engine.store.schema import RejectedKind


@dataclass
class Sources:
    train_steps: list[TrialStep] = field(default_factory=list)
    validation_steps: list[TrialStep] = field(default_factory=list)
    labelled: dict[str, list[Demo]] = field(default_factory=dict)
    train_feedback: list[LabelledFeedback] = field(default_factory=list)
    validation_feedback: list[LabelledFeedback] = field(default_factory=list)


def _split(items: list, n_train: int, n_validation: int, rng: random.Random) -> tuple[list, list]:
    items = list(items)
    rng.shuffle(items)
    validation = items[:n_validation]
    return items[n_validation:n_validation + n_train], validation


def shipped_feedback(split: str) -> list[LabelledFeedback]:
    rows = [json.loads(line) for line in LABELLED_FEEDBACK.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [LabelledFeedback(r["feedback"], r["label"], r["step"]) for r in rows if r["split"] == split]


def suite_sources(config: Config, n_train: int, n_validation: int, rng: random.Random) -> Sources:
    """The suite's train split (the held-out split stays unseen for `benchmarks/bench_teachers.py`)."""
    from engine.tasks import TRAIN, tasks

    train_tasks, validation_tasks = _split(tasks(TRAIN), n_train, n_validation, rng)
    train_feedback, validation_feedback = _split(shipped_feedback("train"), 3 * n_train, 3 * n_validation, rng)
    return Sources([task_step(t, config) for t in train_tasks], [task_step(t, config) for t in validation_tasks],
                   labelled_task_demos(train_tasks), train_feedback, validation_feedback)


LABEL_OF_KIND = {RejectedKind.REDO: "redo", RejectedKind.FURTHER_EDIT: "further_edit"}


@dataclass(frozen=True)
class AcceptedStep:
    """One accepted worker step of the user's dataset: what the worker was given, what was accepted."""

    id: str
    step: str
    instruction: str
    script: str
    accepted: str
    reasoning: str


def dataset_sources(config: Config, n_train: int, n_validation: int, rng: random.Random) -> Sources:
    """Accepted steps and labelled feedback from the user's dataset (read-only: works beside the app)."""
    from engine.store import DatasetStore

    steps: dict[tuple[str, int], AcceptedStep] = {}
    feedback: list[LabelledFeedback] = []
    with DatasetStore(config.data_dir, writable=False) as store:
        for row in store.rows():
            if not row.is_worker:
                continue
            chosen, rejected = row.chosen, row.rejected
            if chosen is not None and chosen.script:
                steps.setdefault((row.session_id, row.step_index), AcceptedStep(
                    f"{row.session_id}:{row.step_index}", row.step, row.prompt.instruction, row.prompt.script,
                    chosen.script, chosen.reasoning))
                if chosen.feedback:
                    feedback.append(LabelledFeedback(chosen.feedback, "accepted", row.step))
            if rejected is not None and rejected.kind in LABEL_OF_KIND and rejected.feedback:
                feedback.append(LabelledFeedback(rejected.feedback, LABEL_OF_KIND[rejected.kind], row.step))
    train, validation = _split(list(steps.values()), n_train, n_validation, rng)
    unique = list({(f.feedback, f.label): f for f in feedback}.values())
    train_feedback, validation_feedback = _split(unique, 3 * n_train, 3 * n_validation, rng)
    labelled = {"worker": [Demo(builtin.worker_user(s.step, s.step, s.instruction, s.script),
                                {"reasoning": s.reasoning or "I make the change the instruction asks for.",
                                 "script": s.accepted}) for s in train]}
    return Sources([], [accepted_step(s.id, s.step, s.script, s.accepted) for s in validation], labelled,
                   train_feedback, validation_feedback)
