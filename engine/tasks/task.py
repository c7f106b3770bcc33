"""The records of the task suite: a template, what it builds, and a task.

A template is a hand-written kind of change (fix an off-by-one, add an --upper flag...) that builds
variants from a seeded random generator: other names, values and phrasings of the request, with the
hidden checks and a hand-written reference solution built from the same values. Each template
belongs to one split, so a held-out task never shares a template with a train task.
"""

from __future__ import annotations

import random
import string
import textwrap
from dataclasses import dataclass
from typing import Callable

TRAIN = "train"
HELD_OUT = "held_out"
SPLITS = (TRAIN, HELD_OUT)

CATEGORIES = (
    "add_feature",
    "fix_bug",
    "refactor",
    "cli_args",
    "data_processing",
    "string_formatting",
    "error_handling",
    "docs_types",
)


@dataclass(frozen=True)
class TaskSpec:
    """What a template builds for one variant."""

    script: str  # the starting script
    request: str  # the change request, in a user's words
    checks: str  # hidden checks: Python source with `check_*` functions (see engine.tasks.harness)
    reference: str  # a script that passes the checks
    filename: str = "script.py"  # the name a user would have given the script


@dataclass(frozen=True)
class Template:
    name: str
    category: str
    split: str
    build: Callable[[random.Random], TaskSpec]


@dataclass(frozen=True)
class Task:
    """One task of the suite. `checks` and `reference` must never reach the engine's agents."""

    id: str  # "<template>-<variant>", stable for a given suite seed
    template: str
    category: str
    split: str
    script: str
    request: str
    checks: str
    reference: str
    filename: str


def fill(source: str, /, **values: object) -> str:
    """Dedent `source` and substitute `$name` placeholders (string.Template: Python code keeps its braces)."""
    body = textwrap.dedent(source).lstrip("\n")
    return string.Template(body).substitute({k: str(v) for k, v in values.items()})

