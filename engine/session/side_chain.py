"""The side-chain: the same prompts also go to a student, and its worse answers become negatives.

ORPO-Distill's recipe (shared/seeds/001): the teacher's answer goes on as before; the student's answer
to the same messages is judged against it and, when worse, stored as a `rejected` (kind `student`, with
`student_version`) beside the eventual `chosen`. Which student answers follows the mixed policy: the
first student answers `first_share` of the prompts, the latest the rest.

- Worker: worse = malformed, or fails to run where the teacher's script ran, or both ran and the
  teacher, asked to judge, prefers its own. The negative is a worker row of the step; it takes the
  step's chosen when the step is accepted.
- Planner and lead: worse = empty, or the teacher judges its own answer better. The row's prompt is
  that agent's messages and its chosen the teacher's answer the engine used.
- Analyzer: decided only when the label is final (the user may override the teacher's label): a student
  label other than the final one is a negative; the chosen is the teacher's answer when it named the
  final label, else the final label itself as a hard label (`origin = "user_label"`). A label that was
  never confirmed (the analyzer was unsure and the safe default stood) stores nothing.
Undecided verdicts store nothing.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

from engine.agents import analyzer, judge, worker
from engine.agents.call import sampling_for
from engine.config import Config
from engine.errors import OutputFormatError
from engine.execution import run_script
from engine.execution.project import RunSpec
from engine.prompts import PromptCall
from engine.session.calls import AgentCalls, identity_of, logprob_record, output_record
from engine.session.events import EventKind, EventSink, SessionEvent, ignore
from engine.store.schema import (
    Agent,
    Chosen,
    LogprobSource,
    Origin,
    Prompt,
    Rejected,
    RejectedKind,
    Row,
    messages_of,
)
from engine.store.store import DatasetStore, now_iso
from engine.teachers.base import Generation, Message, Teacher
from engine.teachers.pool import TeacherPool


@dataclass
class StudentAnswer:
    name: str
    teacher: Teacher
    gen: Generation


@dataclass
class AnalyzerAnswers:
    """The analyzer's teacher answer and the student's, kept until the user's label is final."""

    feedback: str
    messages: list[Message]
    gen: Generation
    teacher: Teacher
    student: StudentAnswer


class SideChain:
    def __init__(self, pool: TeacherPool, config: Config, store: DatasetStore, calls: AgentCalls) -> None:
        self.pool = pool
        self.config = config
        self.store = store
        self.calls = calls

    @property
    def enabled(self) -> bool:
        return self.config.student.mode == "side-chain"

    def pick_student(self, session_id: str, step_index: int, cycle: int) -> str:
        """ORPO-Distill's mixed policy: the first student answers `first_share` of the prompts."""
        names = self.config.student.teachers
        if len(names) == 1:
            return names[0]
        seed = int(hashlib.sha256(session_id.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng([seed, max(step_index, 0), cycle])
        return names[0] if rng.random() < self.config.student.first_share else names[-1]

    def answer(self, agent: str, messages: list[Message], *, session_id: str, step_index: int, cycle: int,
               cancel: threading.Event | None) -> StudentAnswer:
        """The chosen student answers the agent's messages; no log-probabilities needed."""
        name = self.pick_student(session_id, step_index, cycle)
        student = self.pool.get(name)
        sampling = sampling_for(self.config.sampling[agent], seed=self.config.teacher(name).seed + cycle, top_logprobs=0)
        return StudentAnswer(name, student, student.generate(messages, sampling, cancel=cancel))

    @staticmethod
    def rejected(ans: StudentAnswer, agent: Agent, cycle: int, reason: str, *, reasoning: str = "",
                 script: str = "") -> Rejected:
        out = output_record(ans.gen, ans.teacher, agent, cycle, reasoning=reasoning, script=script)
        identity = identity_of(ans.gen, ans.teacher)
        return Rejected(**{**out.__dict__, "kind": RejectedKind.STUDENT, "error": reason,
                           "student_version": identity.model})

    def _judge(self, call: PromptCall, teacher: Teacher, cycle: int, cancel, emit: EventSink) -> str | None:
        gen, _ = self.calls.ask("worker", call, cycle=cycle, teachers=[teacher], cancel=cancel, emit=emit,
                                top_logprobs=False)
        return judge.parse_verdict(gen)

    # -- worker -------------------------------------------------------------------------------
    def worker_negative(self, messages: list[Message], instruction: str, teacher: Teacher,
                        teacher_script: str | None, teacher_ran: bool, *, session_id: str, step_index: int,
                        cycle: int, emit: EventSink = ignore, cancel=None,
                        spec: RunSpec | None = None) -> Rejected | None:
        """`spec`: the session's project mode; the student's script runs as the teacher's did."""
        ans = self.answer("worker", messages, session_id=session_id, step_index=step_index, cycle=cycle, cancel=cancel)
        reasoning, script, reason = "", "", None
        try:
            parsed = worker.parse_answer(ans.gen)
            reasoning, script = parsed.reasoning, parsed.script
        except OutputFormatError as err:
            reason = f"malformed: {err}"
        if reason is None:
            run = run_script(script, self.config.runner, cancel=cancel, spec=spec)
            if not run.ok and teacher_ran:
                reason = f"failed when run where the teacher's script ran: {run.error_text(500)}"
            elif run.ok and teacher_ran and teacher_script is not None and self.config.student.judge:
                verdict = self._judge(self.calls.prompts.judge(instruction, teacher_script, script), teacher, cycle,
                                      cancel, emit)
                if verdict == "A":
                    reason = f"the teacher '{teacher.identity.name}' judged its own answer better"
                elif verdict is None:
                    emit(SessionEvent(EventKind.NOTE, f"side-chain: the judge was undecided about student '{ans.name}'"))
        if reason is None:
            emit(SessionEvent(EventKind.NOTE, f"side-chain: student '{ans.name}' was not worse; nothing stored"))
            return None
        emit(SessionEvent(EventKind.NOTE, f"side-chain: student '{ans.name}' stored as a negative ({reason[:80]})"))
        return self.rejected(ans, Agent.WORKER, cycle, reason, reasoning=reasoning, script=script)

    # -- planner and lead ---------------------------------------------------------------------
    def agent_row(self, agent: Agent, messages: list[Message], gen: Generation, teacher: Teacher, *,
                  session_id: str, step_index: int, step_text: str, cycle: int, emit: EventSink = ignore,
                  cancel=None) -> Row | None:
        ans = self.answer(agent.value, messages, session_id=session_id, step_index=step_index, cycle=cycle,
                          cancel=cancel)
        reason = None
        if not ans.gen.text.strip():
            reason = "empty answer"
        elif self.config.student.judge:
            verdict = self._judge(self.calls.prompts.judge_text(messages[-1]["content"], gen.text, ans.gen.text), teacher,
                                  cycle, cancel, emit)
            if verdict == "A":
                reason = f"the teacher '{teacher.identity.name}' judged its own answer better"
        if reason is None:
            return None
        emit(SessionEvent(EventKind.NOTE, f"side-chain: the {agent}'s student '{ans.name}' stored as a negative "
                                          f"({reason[:60]})"))
        return self._agent_row(agent, messages, self._teacher_chosen(agent, messages, gen, teacher, cycle),
                               self.rejected(ans, agent, cycle, reason), step_index, step_text, cycle)

    def _teacher_chosen(self, agent: Agent, messages: list[Message], gen: Generation, teacher: Teacher,
                        cycle: int) -> Chosen:
        out = output_record(gen, teacher, agent, cycle)
        lp = gen.logprobs()
        record = None
        if lp is not None and teacher.identity.backend != "student":
            record = logprob_record(self.store, lp, source=LogprobSource.GENERATION, scorer=out.teacher,
                                    prompt_sha=Prompt(messages_of(messages)).sha, constraint=out.constraint,
                                    thinking=gen.thinking_logprobs())
        return Chosen(**out.__dict__, logprobs=record)

    @staticmethod
    def _agent_row(agent: Agent, messages: list[Message], chosen: Chosen, rejected: Rejected, step_index: int,
                   step_text: str, cycle: int) -> Row:
        return Row(agent=agent, step_index=step_index, step=step_text, cycle=cycle,
                   prompt=Prompt(messages_of(messages)), chosen=chosen, rejected=rejected)

    # -- analyzer -----------------------------------------------------------------------------
    def analyzer_answers(self, feedback: str, messages: list[Message], gen: Generation, teacher: Teacher, *,
                         session_id: str, step_index: int, cycle: int, cancel=None) -> AnalyzerAnswers:
        ans = self.answer("analyzer", messages, session_id=session_id, step_index=step_index, cycle=cycle,
                          cancel=cancel)
        return AnalyzerAnswers(feedback, messages, gen, teacher, ans)

    def analyzer_row(self, answers: AnalyzerAnswers, label: str, *, confirmed: bool, step_index: int,
                     step_text: str, cycle: int, emit: EventSink = ignore) -> Row | None:
        if not confirmed:
            return None
        theirs, mine = analyzer.answer_label(answers.gen), analyzer.answer_label(answers.student.gen)
        if mine == label:
            return None
        if theirs == label:
            chosen = self._teacher_chosen(Agent.ANALYZER, answers.messages, answers.gen, answers.teacher, cycle)
        else:  # the teacher named another label (or none): the user's label is the answer, without soft labels
            chosen = Chosen(text=analyzer.label_answer(label), agent=Agent.ANALYZER, teacher=None, cycle=cycle,
                            created_at=now_iso(), origin=Origin.USER_LABEL)
        reason = f"label {mine} where the user's label is {label}"
        emit(SessionEvent(EventKind.NOTE, f"side-chain: the analyzer's student '{answers.student.name}' stored as a "
                                          f"negative ({reason})"))
        return self._agent_row(Agent.ANALYZER, answers.messages, chosen,
                               self.rejected(answers.student, Agent.ANALYZER, cycle, reason), step_index, step_text,
                               cycle)
