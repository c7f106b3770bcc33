"""The worker's candidates: several proposals per cycle, each judged and run, the best one shown.

Why candidates: a small teacher's one greedy answer is a poor sample of what it can do. On the task
suite's train split the embedded default passes far more tasks with one of a few samples than with
its greedy answer (README, "The engine against the raw model"), and a system that samples, runs and
chooses turns that gap into proposals the user can accept, and into rows worth distilling.

Each candidate is judged in this order, and the first problem found is its kind:
  malformed  no single whole script (the parser's reason);
  echo       the script or the reasoning repeats the prompt's own text (`engine.prompts.echo`);
  no-op      the script changes nothing, keeps no statement, or deletes functions or checks unasked
             (`engine.agents.cheat_guard.proposal_problem`);
  failed     the script fails when run in the sandbox;
  runs       none of the above: it may be shown.

`choose` picks among the candidates that run, in a documented order:
  1. not the script the user was last shown in this step (a teacher that repeats itself is said so
     only when nothing else runs);
  2. reasoning that names something of the script or the request (`vacuous_reasoning`);
  3. the teacher's own likelihood: the mean log-probability per token of the answer, the most likely
     first (a generation without log-probabilities ranks by the order it was sampled in).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from enum import StrEnum

from engine.agents.parsing import WorkerAnswer
from engine.execution import RunResult
from engine.teachers.base import Generation


class CandidateKind(StrEnum):
    MALFORMED = "malformed"
    ECHO = "echo"
    NOOP = "no-op"
    FAILED = "failed"
    RUNS = "ok"  # runs cleanly and may be shown


@dataclass
class Candidate:
    index: int  # the order it was sampled in (0: the first, at the worker's own temperature)
    gen: Generation
    kind: CandidateKind
    problem: str = ""  # why it cannot be shown; "" when it runs
    answer: WorkerAnswer | None = None
    run: RunResult | None = None

    @property
    def script(self) -> str | None:
        return self.answer.script if self.answer else None

    @property
    def mean_logprob(self) -> float | None:
        tokens = self.gen.tokens
        return sum(t.logprob for t in tokens) / len(tokens) if tokens else None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?")
# Words every reasoning may use without saying anything about this script.
_GENERIC = frozenset("""
a an the and or but of to in on for with as at by from into it its is are was be been this that these those
i we you he she they my our your script code program function functions python file line lines change changes
changed changing instruction instructions request requested step steps user now new old also just so then than
make made makes do does did done update updated use used using add added adds keep kept clear concise correct
well structured works work working run runs output result results not no yes all any each every some more less
""".split())


def _names(script: str) -> set[str]:
    """Identifiers, attribute names, and the words and numbers of string and number literals."""
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError):
        return {w.lower() for w in _IDENTIFIER.findall(script)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)) and not isinstance(node.value, bool):
            found.update(_IDENTIFIER.findall(str(node.value)))
    return {w.lower() for w in found}


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def vacuous_reasoning(reasoning: str, script_before: str, script_after: str, request: str) -> bool:
    """The reasoning names no identifier or literal of either script and no content word of the request.

    "1. The instruction is clear and concise. 2. The code is well-structured" says nothing a student
    should learn to say; "greet() now prints the greeting twice" names what changed.
    """
    said = {w.lower() for w in _IDENTIFIER.findall(reasoning)} - _GENERIC
    if not said:
        return True
    known = (_names(script_before) | _names(script_after)
             | {w.lower() for w in _IDENTIFIER.findall(request) if len(w) >= 3}) - _GENERIC
    stems = {_stem(w) for w in known}
    return not any(w in known or _stem(w) in stems for w in said)


def choose(candidates: list[Candidate], *, last_script: str | None, script_before: str,
           request: str) -> tuple[Candidate | None, bool]:
    """The candidate to show and whether it repeats `last_script` (see the module docstring)."""
    running = [c for c in candidates if c.kind == CandidateKind.RUNS]
    if not running:
        return None, False

    def key(c: Candidate) -> tuple:
        assert c.answer is not None
        repeated = last_script is not None and c.answer.script.strip() == last_script.strip()
        vacuous = vacuous_reasoning(c.answer.reasoning, script_before, c.answer.script, request)
        likelihood = c.mean_logprob
        return (repeated, vacuous, -(likelihood if likelihood is not None else float("-inf")), c.index)

    best = min(running, key=key)
    return best, key(best)[0]


def first_failure(candidates: list[Candidate]) -> Candidate | None:
    """What the lead hears when no candidate runs: a real run error says most, then a no-op's reason,
    then an echo's, then a malformed answer's."""
    for kind in (CandidateKind.FAILED, CandidateKind.NOOP, CandidateKind.ECHO, CandidateKind.MALFORMED):
        for c in candidates:
            if c.kind == kind:
                return c
    return None
