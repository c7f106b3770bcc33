"""The task suite: every template's variants, built deterministically from one seed.

Each variant draws from its own generator, seeded by (suite seed, template, attempt), so adding a
template or changing one never changes the tasks of another. A draw that repeats an earlier variant
of the same template (same script and request) is skipped, so every task is distinct.
"""

from __future__ import annotations

import functools
import random

from engine.tasks.task import SPLITS, Task, Template
from engine.tasks.templates import TEMPLATES

SUITE_SEED = 12
VARIANTS_PER_TEMPLATE = 4
_MAX_DRAWS = 50  # per variant; a template with too few distinct variants is a bug in the template


def template_tasks(template: Template, variants: int = VARIANTS_PER_TEMPLATE, seed: int = SUITE_SEED) -> list[Task]:
    tasks: list[Task] = []
    seen: set[tuple[str, str]] = set()
    attempt = 0
    while len(tasks) < variants:
        if attempt >= _MAX_DRAWS * variants:
            raise ValueError(f"template {template.name} gives fewer than {variants} distinct variants")
        spec = template.build(random.Random(f"{seed}:{template.name}:{attempt}"))
        attempt += 1
        if (spec.script, spec.request) in seen:
            continue
        seen.add((spec.script, spec.request))
        tasks.append(Task(
            id=f"{template.name}-{len(tasks)}", template=template.name, category=template.category,
            split=template.split, script=spec.script, request=spec.request, checks=spec.checks,
            reference=spec.reference, filename=spec.filename,
        ))
    return tasks


@functools.lru_cache(maxsize=4)
def build_suite(seed: int = SUITE_SEED, variants: int = VARIANTS_PER_TEMPLATE) -> tuple[Task, ...]:
    """All tasks, in template order."""
    return tuple(task for template in TEMPLATES for task in template_tasks(template, variants, seed))


def tasks(split: str | None = None, *, category: str | None = None, seed: int = SUITE_SEED) -> list[Task]:
    """The suite's tasks, optionally one split (`train`, `held_out`) and one category."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; the splits are {', '.join(SPLITS)}")
    return [t for t in build_suite(seed) if (split is None or t.split == split)
            and (category is None or t.category == category)]


def task_by_id(task_id: str, seed: int = SUITE_SEED) -> Task:
    for task in build_suite(seed):
        if task.id == task_id:
            return task
    raise KeyError(task_id)
