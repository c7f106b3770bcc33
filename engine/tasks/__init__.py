"""The task suite: small script-change tasks with hidden checks (issue #12).

    from engine.tasks import tasks, check_task
    for task in tasks("held_out"):
        report = check_task(task, proposed_script)   # runs in the sandbox
        report.passed, report.failures

Each task has a starting script, a change request in a user's words, hidden checks the engine never
sees, and a hand-written reference solution. The split is fixed by template (`engine.tasks.templates`).
"""

from __future__ import annotations

import threading

from engine.config import RunnerConfig
from engine.tasks.harness import CheckReport, CheckResult, run_checks
from engine.tasks.suite import SUITE_SEED, build_suite, task_by_id, tasks
from engine.tasks.task import CATEGORIES, HELD_OUT, SPLITS, TRAIN, Task

__all__ = [
    "CATEGORIES", "HELD_OUT", "SPLITS", "SUITE_SEED", "TRAIN", "CheckReport", "CheckResult", "Task",
    "build_suite", "check_task", "run_checks", "task_by_id", "tasks",
]


def check_task(task: Task, script: str, config: RunnerConfig | None = None, *,
               cancel: threading.Event | None = None) -> CheckReport:
    """The task's hidden checks run against `script` in the sandbox."""
    return run_checks(task.checks, script, config, cancel=cancel)
