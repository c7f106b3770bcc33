"""Prompts tried on steps whose outcome can be checked: a session's cycle without the store or the user.

For each step the lead writes an instruction, the worker rewrites the script, the script runs in the
sandbox, and the step's own check decides: for a task of the suite its hidden checks, for a step
from the user's dataset "runs cleanly, no cheat flag, and close to the script the user accepted".
As in a session, a malformed answer or a failed run goes back to the lead as the error (the worker
then starts from the failing script), and a failed check as Redo feedback, for up to `cycles`
cycles. What is measured is what `shake prompts optimize` keeps the best of and what
`benchmarks/bench_teachers.py` reports: malformed answers, proposals that run, steps that pass,
cycles and seconds.

A passing cycle leaves its trace (the lead's and the worker's messages and answers): DSPy's
bootstrapped demonstrations are such traces.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Callable

from engine.agents import cheat_guard, lead, worker
from engine.agents.call import generate, sampling_for
from engine.agents.parsing import parse_lead_output
from engine.config import Config
from engine.errors import OutputFormatError
from engine.execution import run_script
from engine.prompts.book import PromptBook
from engine.teachers.base import Teacher

SIMILAR_ENOUGH = 0.8  # a dataset step passes when its script is this close to the accepted one (difflib ratio)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str = ""  # why not, in the user's words: the Redo feedback of the next cycle


@dataclass(frozen=True)
class TrialStep:
    id: str
    request: str
    script: str
    check: Callable[[str], Verdict] = field(compare=False)


def task_step(task, config: Config) -> TrialStep:
    """A task of the suite (engine.tasks): its hidden checks decide."""
    from engine.tasks import check_task

    def check(script: str) -> Verdict:
        report = check_task(task, script, config.runner)
        if report.passed:
            return Verdict(True)
        return Verdict(False, report.problem or (report.failures[0].message if report.failures else "the checks failed"))

    return TrialStep(task.id, task.request, task.script, check)


def accepted_step(step_id: str, request: str, script: str, accepted: str) -> TrialStep:
    """A step from the user's dataset: close enough to what the user accepted (it already ran cleanly)."""

    def check(proposed: str) -> Verdict:
        ratio = difflib.SequenceMatcher(None, proposed, accepted).ratio()
        if ratio >= SIMILAR_ENOUGH:
            return Verdict(True)
        return Verdict(False, "that is not the change I asked for")

    return TrialStep(step_id, request, script, check)


@dataclass
class Cycle:
    malformed: bool = False
    ran: bool = False
    passed: bool = False
    cheat: bool = False
    lead_fallback: bool = False
    reason: str = ""


@dataclass
class StepOutcome:
    step_id: str
    cycles: list[Cycle]
    seconds: float
    traces: dict[str, tuple[str, dict]] = field(default_factory=dict)  # agent -> (user message, answer fields)

    @property
    def passed(self) -> bool:
        return any(c.passed for c in self.cycles)


@dataclass(frozen=True)
class TrialTeachers:
    lead: Teacher
    worker: Teacher


def run_step(step: TrialStep, book: PromptBook, teachers: TrialTeachers, config: Config, *, cycles: int = 3,
             seed: int = 0) -> StepOutcome:
    started = time.perf_counter()
    script = step.script
    context: dict = {}
    failed_script: str | None = None
    done: list[Cycle] = []
    traces: dict[str, tuple[str, dict]] = {}
    for number in range(1, cycles + 1):
        cycle = Cycle()
        done.append(cycle)
        lead_call = book.lead(step.request, step.request, script, **context)
        lead_gen = generate(teachers.lead, lead_call, _sampling(config, "lead", teachers.lead, seed + number))
        instruction, cycle.lead_fallback = lead.parse_instruction(lead_gen, step.request)
        base = failed_script if failed_script is not None else script
        worker_call = book.worker(step.request, step.request, None if cycle.lead_fallback else instruction, base,
                                  error=context.get("error"), feedback=context.get("feedback"))
        gen = generate(teachers.worker, worker_call, _sampling(config, "worker", teachers.worker, seed + number))
        try:
            answer = worker.parse_answer(gen)
        except OutputFormatError as err:
            cycle.malformed, cycle.reason = True, str(err)
            context = {"error": f"The programmer's answer could not be used: {err}. The answer must contain one "
                                "```python block with the whole script.", "failed_script": None}
            failed_script = None
            continue
        run = run_script(answer.script, config.runner)
        cycle.ran = run.ok
        cycle.cheat = cheat_guard.check_proposal(base, answer.script, step.request).flagged
        if not run.ok:
            cycle.reason = run.error_text(400)
            context = {"error": run.error_text(), "failed_script": answer.script}
            failed_script = answer.script
            continue
        verdict = step.check(answer.script)
        if verdict.passed:
            cycle.passed = True
            traces["worker"] = (worker_call.user, {"reasoning": answer.reasoning, "script": answer.script})
            try:
                said = parse_lead_output(lead_gen.text)
                traces["lead"] = (lead_call.user, {"reasoning": said.reasoning, "instruction": said.instruction})
            except OutputFormatError:
                pass  # a lead answer outside the shape is no demonstration
            break
        cycle.reason = verdict.message
        context = {"feedback": verdict.message, "feedback_kind": "redo", "previous_output": answer.script}
        failed_script = None
    return StepOutcome(step.id, done, time.perf_counter() - started, traces)


def _sampling(config: Config, agent: str, teacher: Teacher, seed: int):
    tcfg = config.teacher(teacher.identity.name)
    return sampling_for(config.sampling[agent], seed=tcfg.seed + seed, top_logprobs=0)


@dataclass(frozen=True)
class TrialSummary:
    steps: int
    passed: int
    worker_answers: int
    malformed: int
    proposals_run: int
    cheats: int
    lead_fallbacks: int
    cycles_to_accept: float | None  # mean over passed steps
    seconds: float

    @property
    def pass_rate(self) -> float:
        return self.passed / self.steps if self.steps else 0.0

    @property
    def malformed_rate(self) -> float:
        return self.malformed / self.worker_answers if self.worker_answers else 0.0

    @property
    def run_rate(self) -> float:
        """Share of well-formed proposals whose script ran cleanly."""
        formed = self.worker_answers - self.malformed
        return self.proposals_run / formed if formed else 0.0

    @property
    def seconds_per_accepted(self) -> float | None:
        return self.seconds / self.passed if self.passed else None


def summarize(outcomes: list[StepOutcome]) -> TrialSummary:
    cycles = [c for o in outcomes for c in o.cycles]
    passed = [o for o in outcomes if o.passed]
    return TrialSummary(
        steps=len(outcomes), passed=len(passed), worker_answers=len(cycles),
        malformed=sum(c.malformed for c in cycles), proposals_run=sum(c.ran for c in cycles),
        cheats=sum(c.cheat for c in cycles), lead_fallbacks=sum(c.lead_fallback for c in cycles),
        cycles_to_accept=(sum(len(o.cycles) for o in passed) / len(passed)) if passed else None,
        seconds=sum(o.seconds for o in outcomes),
    )
