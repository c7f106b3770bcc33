"""`shake eval RUN --scoreboard`: did the student get better on *your* work?

The run's held-out steps (split by step, the same split training used) are replayed with three
contestants as the worker, each answering the step's first-cycle prompt greedily:

- the student (the run's adapter),
- the base model it started from (the same weights without the adapter),
- the teacher that wrote the step's accepted output (when it is still configured).

An answer passes when its script and the accepted script both run and print the same output, or,
when both run but print differently, the judge (that teacher, else the worker's first teacher)
prefers it to the accepted one. A malformed answer or a script that fails to run does not pass.

The result is a typed `Scoreboard`, saved as RUN/scoreboard.json (the app's trainer screen reads it
with `Scoreboard.load`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.agents import judge, worker
from engine.config import Config, RunnerConfig
from engine.errors import OutputFormatError, ShakeError
from engine.execution import RunResult, run_script
from engine.store.atomic import atomic_write_text
from engine.student.runs import RunDir
from engine.teachers.base import Generation, ModelIdentity, SamplingParams, Teacher
from trainer.data import HeldOutStep, held_out_steps

STUDENT, BASE, TEACHER = "student", "base", "teacher"


@dataclass(frozen=True)
class StepOutcome:
    step_key: str
    contestant: str  # student | base | teacher
    model: str  # what answered
    well_formed: bool
    ran: bool
    agreed: bool  # printed what the accepted script prints
    judge_preferred: bool | None  # asked only when both ran and printed differently
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class ContestantScore:
    contestant: str
    steps: int  # steps it answered
    passed: int
    well_formed: int
    ran: int
    agreed: int
    judge_wins: int
    unavailable: int  # steps it could not answer (teacher not configured or down)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.steps if self.steps else None


@dataclass(frozen=True)
class Scoreboard:
    run: str
    held_out_steps: int
    reference_runs: int  # held-out steps whose accepted script still runs here
    contestants: tuple[ContestantScore, ...]
    outcomes: tuple[StepOutcome, ...]
    created_at: str

    def score(self, contestant: str) -> ContestantScore | None:
        return next((c for c in self.contestants if c.contestant == contestant), None)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for c, score in zip(data["contestants"], self.contestants):
            c["pass_rate"] = score.pass_rate
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Scoreboard:
        known = {f.name for f in dataclasses.fields(ContestantScore)}
        return cls(data["run"], data["held_out_steps"], data["reference_runs"],
                   tuple(ContestantScore(**{k: v for k, v in c.items() if k in known}) for c in data["contestants"]),
                   tuple(StepOutcome(**o) for o in data["outcomes"]), data["created_at"])

    def save(self, run_dir: Path) -> Path:
        path = RunDir(Path(run_dir)).scoreboard
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: Path) -> Scoreboard | None:
        path = RunDir(Path(run_dir)).scoreboard
        return cls.from_dict(json.loads(path.read_text())) if path.exists() else None

    def lines(self) -> list[str]:
        out = [f"held-out steps: {self.held_out_steps} (accepted script runs here for {self.reference_runs})"]
        for c in self.contestants:
            rate = "n/a" if c.pass_rate is None else f"{100 * c.pass_rate:.0f}%"
            extra = f", {c.unavailable} not answered" if c.unavailable else ""
            out.append(f"  {c.contestant:<8} pass {c.passed}/{c.steps} ({rate}): same output {c.agreed}, "
                       f"judge preferred {c.judge_wins}, ran {c.ran}, well-formed {c.well_formed}{extra}")
        return out


Answer = Callable[[list[dict]], str]  # the worker's messages -> the answer's text


def judge_step(step: HeldOutStep, contestant: str, model: str, text: str, reference: RunResult,
               runner: RunnerConfig, judge_teacher: Teacher | None) -> StepOutcome:
    """Run the contestant's answer and compare it with the accepted script (see the module docstring)."""
    try:
        script = worker.parse_worker_output(text).script
    except OutputFormatError as err:
        return StepOutcome(step.step_key, contestant, model, False, False, False, None, False, str(err))
    run = run_script(script, runner)
    if not run.ok:
        return StepOutcome(step.step_key, contestant, model, True, False, False, None, False, run.error_text()[-200:])
    if reference.ok and run.stdout == reference.stdout:
        return StepOutcome(step.step_key, contestant, model, True, True, True, None, True)
    if not reference.ok or judge_teacher is None:
        note = "the accepted script does not run here" if not reference.ok else "no judge"
        return StepOutcome(step.step_key, contestant, model, True, True, False, None, False, note)
    verdict = judge.parse_verdict(judge_teacher.generate(
        judge.judge_messages(step.instruction, step.chosen_script, script),
        SamplingParams(temperature=0.0, max_tokens=8, top_logprobs=0)))
    return StepOutcome(step.step_key, contestant, model, True, True, False, verdict == "B", verdict == "B",
                       f"judge: {verdict or 'undecided'}")


def tally(contestant: str, outcomes: list[StepOutcome], unavailable: int) -> ContestantScore:
    mine = [o for o in outcomes if o.contestant == contestant]
    return ContestantScore(contestant, len(mine), sum(o.passed for o in mine), sum(o.well_formed for o in mine),
                           sum(o.ran for o in mine), sum(o.agreed for o in mine),
                           sum(bool(o.judge_preferred) for o in mine), unavailable)


def build_scoreboard(run_name: str, steps: list[HeldOutStep], answers: dict[str, tuple[str, Answer]],
                     teachers: Callable[[dict], Teacher | None], judges: Callable[[dict], Teacher | None],
                     runner: RunnerConfig, progress: Callable[[str], None] | None = None) -> Scoreboard:
    """`answers`: contestant -> (model name, answer function) for the student and the base;
    `teachers(identity)`: the configured teacher that wrote a chosen, or None; `judges(identity)`:
    the judge for that step, or None."""
    outcomes: list[StepOutcome] = []
    unavailable = 0
    reference_runs = 0
    for i, step in enumerate(steps):
        reference = run_script(step.chosen_script, runner)
        reference_runs += reference.ok
        teacher = teachers(step.chosen_teacher)
        contestants = dict(answers)
        if teacher is not None:
            contestants[TEACHER] = (teacher.identity.name, lambda messages, t=teacher: _greedy(t, messages))
        else:
            unavailable += 1
        for name, (model, answer) in contestants.items():
            try:
                text = answer(step.messages)
            except ShakeError as err:
                outcomes.append(StepOutcome(step.step_key, name, model, False, False, False, None, False, str(err)))
                continue
            outcomes.append(judge_step(step, name, model, text, reference, runner, judges(step.chosen_teacher)))
        if progress:
            progress(f"step {i + 1}/{len(steps)}")
    scores = tuple(tally(c, outcomes, unavailable if c == TEACHER else 0) for c in (STUDENT, BASE, TEACHER))
    return Scoreboard(run_name, len(steps), reference_runs, scores, tuple(outcomes),
                      _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def _greedy(teacher: Teacher, messages: list[dict], max_tokens: int = 1024) -> str:
    gen: Generation = teacher.generate(messages, SamplingParams(temperature=0.0, max_tokens=max_tokens, top_logprobs=0))
    return gen.text


def scoreboard(run_dir: Path, config: Config, *, max_new_tokens: int = 512, max_steps: int = 0,
               progress: Callable[[str], None] | None = None) -> Scoreboard:
    """Replay the run's held-out steps with the student, the base model and the teacher; save the result."""
    from engine.store import Snapshot
    from engine.student.loader import base_source, load_tokenizer, resolve_student
    from engine.teachers.pool import TeacherPool
    from trainer.config import TrainConfig
    from trainer.data import build_examples, prompt_ids, split
    from trainer.errors import TrainError
    from trainer.trained import generating_student

    cfg = TrainConfig.from_dict(RunDir(Path(run_dir)).settings())
    tokenizer = load_tokenizer(resolve_student(Path(run_dir)))
    snapshot = Snapshot(RunDir(Path(run_dir)).snapshot)
    examples, _ = build_examples(snapshot, tokenizer, cfg)
    _, held = split(examples, cfg.eval_fraction)
    steps = held_out_steps(snapshot.rows, held)
    if not steps:
        raise TrainError("this run has no held-out steps to replay; train with --eval-fraction above 0")
    if max_steps:
        steps = steps[:max_steps]
    # the student and its base on the student backend: llama.cpp where they convert (the base GGUF, with and
    # without the run's adapter), else transformers
    prompts = [prompt_ids(tokenizer, step.messages) for step in steps]
    base = base_source(cfg.student)
    student = generating_student(run_dir, Path(run_dir).name, prompts, max_new_tokens)
    base_student = generating_student(base.gguf_path or base.base, "base", prompts, max_new_tokens)
    if progress:
        progress(f"student on {student.serving.line()}; base on {base_student.serving.line()}")

    pool = TeacherPool(config)

    def teacher_for(identity: ModelIdentity | None) -> Teacher | None:
        name = identity.name if identity else ""
        if name not in config.teachers or config.teachers[name].backend == "student":
            return None
        try:
            return pool.get(name)
        except ShakeError:
            return None

    def judge_for(identity: ModelIdentity | None) -> Teacher | None:
        found = teacher_for(identity)
        if found is not None:
            return found
        try:
            return pool.for_agent("worker")[0]
        except (ShakeError, IndexError):
            return None

    base_name = cfg.student or "bundled SmolLM2-135M-Instruct"
    try:
        board = build_scoreboard(Path(run_dir).name, steps, {
            STUDENT: (Path(run_dir).name, lambda m: _greedy(student, m, max_new_tokens)),
            BASE: (base_name, lambda m: _greedy(base_student, m, max_new_tokens)),
        }, teacher_for, judge_for, config.runner, progress)
    finally:
        pool.close()
        student.close()
        base_student.close()
    board.save(run_dir)
    return board
