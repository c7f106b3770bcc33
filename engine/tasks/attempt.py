"""One answer to a task as the worker would give it, judged by the reviewer: pass@1 and well-formedness.

The prompt is the worker's (`engine.agents.worker.worker_messages`) with the task's request as the
instruction and its starting script; decoding is greedy, so an attempt is a pure function of the model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from engine.agents import worker
from engine.config import RunnerConfig
from engine.errors import OutputFormatError
from engine.tasks.reviewer import Reviewer
from engine.tasks.task import Task
from engine.teachers.base import SamplingParams, Teacher


@dataclass(frozen=True)
class Attempt:
    task_id: str
    well_formed: bool  # one whole script in one ```python block
    passed: bool  # well formed, every hidden check passes, no cheat
    checks_passed: int
    checks_total: int
    cheat: str | None
    problem: str | None  # the reviewer's reason, or the format error
    tokens: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def attempt(teacher: Teacher, task: Task, *, max_tokens: int = 512, runner: RunnerConfig | None = None) -> Attempt:
    started = time.perf_counter()
    gen = teacher.generate(worker.worker_messages(task.request, task.script),
                           SamplingParams(temperature=0.0, max_tokens=max_tokens, top_logprobs=0))
    n_tokens = len(gen.tokens) or len(gen.text) // 4
    try:
        script = worker.parse_answer(gen).script
    except OutputFormatError as err:
        return Attempt(task.id, False, False, 0, 0, None, str(err), n_tokens, time.perf_counter() - started)
    review = Reviewer(task, runner).review(script, 1)
    return Attempt(task.id, True, review.passed, review.checks_passed, review.checks_total, review.cheat,
                   review.problem, n_tokens, time.perf_counter() - started)
