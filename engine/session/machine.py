"""A Precision Shaking session: a state machine over project steps and cycles.

The rules (the paper's Mechanism section; `shared/README.md` §1):

- The step's `prompt` is the worker's input in the step's first cycle: the lead's first instruction
  with the current script.
- The worker's script fails when run -> new row, `rejected` = that output (kind `error`); the error
  goes back to the lead, which writes a fix instruction (the fix cycle starts from the failing script).
- Feedback *Redo* -> new row, `rejected` = that output (kind `redo`); a new cycle starts from the
  unchanged current script.
- Feedback *Further edit* -> new row, `rejected` = that output (kind `further_edit`); the current
  script becomes this output; the lead writes a refinement instruction.
- Feedback *Accepted* -> `chosen` = the accepted output (hard label and teacher log-probabilities,
  `soft_labels.py`) is written into every worker row of the step; if the step has no teacher rejection
  (error, Redo, Further edit), one row with `rejected` empty. The current script becomes the accepted
  one and the next step begins.

Malformed worker output (no single whole script) is a failed attempt with its reason and writes no
row. After `switch_teacher_after` failed attempts (errors, malformed outputs, Redos) the worker moves
to its next teacher; when every teacher has had its share the step stalls (`StallInfo`) until the user
tries again, edits the step, skips it or adds a teacher. All state lives in the store after every
transition, so a session can stop at any point and resume. Side-chain negatives (`side_chain.py`) are
committed with the transition that follows them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from engine.agents import analyzer, cheat_guard, lead, planner, worker
from engine.agents.analyzer import Classification
from engine.agents.shapes import WORKER_EXAMPLE_SCRIPT
from engine.config import Config
from engine.errors import AttemptsExhausted, InputError, OutputFormatError, SessionError
from engine.execution import RunResult, run_script
from engine.execution.project import RunSpec
from engine.prompts import PromptCall
from engine.prompts import echo
from engine.session import candidates, project_context
from engine.session.calls import AgentCalls, identity_of, logprob_record, messages_for, output_record
from engine.session.events import EventKind, EventSink, SessionEvent, ignore
from engine.inputs import read_script
from engine.session.script import unified_diff
from engine.session.side_chain import AnalyzerAnswers, SideChain
from engine.session.soft_labels import SoftLabels
from engine.store.codec import encode
from engine.store.schema import (
    Agent,
    Chosen,
    ContextKind,
    LogprobSource,
    Origin,
    Output,
    PendingProposal,
    PlanStep,
    Prompt,
    Rejected,
    RejectedKind,
    Row,
    SessionState,
    SessionStatus,
    StallInfo,
    StepContext,
    StepState,
    StepStatus,
    messages_of,
)
from engine.store.store import DatasetStore, now_iso
from engine.teachers.base import Generation, Teacher, TokenCallback, answer_form
from engine.teachers.pool import TeacherPool

TEACHER_REJECTIONS = (RejectedKind.ERROR, RejectedKind.REDO, RejectedKind.FURTHER_EDIT)
LEAD_DRAWS = 2  # the lead is asked once more when its instruction echoes the prompt, then the step stands in


@dataclass
class Proposal:
    """A script that ran, waiting for the user's review (a view of `PendingProposal`)."""

    step_index: int
    step: str
    cycle: int
    instruction: str
    reasoning: str
    script: str
    base_script: str
    text: str
    teacher: dict[str, str]
    run: RunResult
    warnings: list[str]

    def diff(self) -> str:
        return unified_diff(self.base_script, self.script) or "(no change: the proposal is identical to the current script)\n"


class Session:
    def __init__(self, store: DatasetStore, pool: TeacherPool, config: Config, state: SessionState) -> None:
        self.store = store
        self.pool = pool
        self.config = config
        self.state = state
        self.calls = AgentCalls(pool, config)
        self.prompts = self.calls.prompts  # the built-in prompts, or the versions [prompts] pins
        self.side_chain = SideChain(pool, config, store, self.calls)
        self.soft_labels = SoftLabels(pool, config, store)
        self._agent_rows: list[Row] = []  # side-chain rows waiting for the next commit
        self._analyzer: AnalyzerAnswers | None = None  # the last classification's answers
        # the fixed texts no answer may repeat: the built-in ones and this session's demonstrations
        demo_fields = tuple(str(v) for p in self.prompts for d in p.demos for v in d.fields.values())
        self._echo_sources = echo.sources_from(demo_fields)
        self._echo_sources_scripts = {" ".join(t.split()) for t in (WORKER_EXAMPLE_SCRIPT, *demo_fields)}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def start(cls, store: DatasetStore, pool: TeacherPool, config: Config, script_path: Path, request: str,
              project: RunSpec | None = None) -> Session:
        script = read_script(script_path)
        request = request.strip()
        if not request:
            raise InputError("the change request is empty; say what the script should do differently")
        pool.require_healthy()  # before anything is written
        state = SessionState(script_path=str(Path(script_path).resolve()), request=request,
                             original_script=script, current_script=script, project=project)
        session_id = store.create_session(state)
        return cls(store, pool, config, store.load_state(session_id))

    @classmethod
    def resume(cls, store: DatasetStore, pool: TeacherPool, config: Config, session_id: str) -> Session:
        return cls(store, pool, config, store.load_state(session_id))

    # -- typed accessors ----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.state.session_id

    @property
    def status(self) -> SessionStatus:
        return self.state.status

    @property
    def current_script(self) -> str:
        return self.state.current_script

    @property
    def steps(self) -> list[PlanStep]:
        return self.state.steps

    @property
    def step_index(self) -> int:
        return self.state.step_index

    @property
    def step_text(self) -> str:
        step = self.state.current_step
        return step.text if step else ""

    @property
    def stall(self) -> StallInfo | None:
        return self.state.step.stall

    # -- saving -------------------------------------------------------------------------------
    def _save(self, *, new_rows: list[Row] = (), chosen_for_step: tuple[int, Chosen] | None = None) -> list[str]:
        ids = self.store.commit(self.id, state=self.state, new_rows=list(new_rows) + self._agent_rows,
                                chosen_for_step=chosen_for_step)
        self._agent_rows = []
        return ids

    def _reload(self) -> None:
        """Back to the last saved state; unsaved side-chain rows go with the cycle that made them."""
        self.state = self.store.load_state(self.id)
        self._agent_rows = []

    def _transition(self, action: Callable[[], object]) -> object:
        """Run one transition; any failure (a cancel, a teacher error, a failed write) leaves both the
        store and this object at the last saved state."""
        try:
            return action()
        except BaseException:
            self._reload()
            raise

    # -- agents -------------------------------------------------------------------------------
    def _side_chain_agent(self, agent: Agent, call: PromptCall, gen: Generation, teacher: Teacher, emit: EventSink,
                          cancel) -> None:
        """In side-chain mode a student answers the same messages; called only with a usable answer,
        so that an echo is never stored as a chosen."""
        if not self.side_chain.enabled:
            return
        row = self.side_chain.agent_row(agent, messages_for(call, teacher), gen, teacher, session_id=self.id,
                                        step_index=self._row_step_index(), step_text=self._row_step_text(),
                                        cycle=self.state.step.cycle, emit=emit, cancel=cancel)
        if row is not None:
            self._agent_rows.append(row)

    def _row_step_index(self) -> int:
        return self.state.step_index if self.state.current_step else -1

    def _row_step_text(self) -> str:
        return self.step_text if self.state.current_step else "planning"

    def worker_teachers(self) -> list[Teacher]:
        """The worker's teachers in order; in student-first mode the latest student comes first."""
        workers = self.pool.for_agent("worker")
        student = self.config.student
        if student.mode == "student-first":
            latest = student.teachers[-1]
            return [self.pool.get(latest)] + [w for w in workers if w.identity.name != latest]
        return workers

    # -- planning -----------------------------------------------------------------------------
    def plan(self, *, emit: EventSink | None = None, max_steps: int | None = None, cancel=None) -> list[str]:
        if self.status != SessionStatus.PLANNING:
            return [s.text for s in self.steps]
        emit = emit or ignore
        limit = min(max_steps or self.config.session.max_steps, self.config.session.max_steps)

        def action() -> list[str]:
            if planner.names_one_change(self.state.request):
                steps = [" ".join(self.state.request.split())]
                emit(SessionEvent(EventKind.NOTE, "the request names one change: it is the only step"))
            else:
                call = self.prompts.planner(self.state.request, self.current_script, limit)
                gen, teacher = self.calls.ask("planner", call, cycle=self.state.step.cycle, cancel=cancel, emit=emit)
                plan = planner.parse_plan(gen, self.state.request, limit,
                                          lambda step: echo.echo_reason(step, self._echo_sources))
                for step, why in plan.dropped:
                    emit(SessionEvent(EventKind.NOTE, f"the planner's step {step[:80]!r} was left out: {why}"))
                if plan.used_fallback:
                    emit(SessionEvent(EventKind.NOTE, "the planner gave no usable steps; the request is the only step"))
                else:
                    self._side_chain_agent(Agent.PLANNER, call, gen, teacher, emit, cancel)
                steps = plan.steps
            self.state.steps = [PlanStep(s) for s in steps]
            self.state.status = SessionStatus.WORKING
            self._save()
            emit(SessionEvent(EventKind.PLAN, "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps)), {"steps": steps}))
            return steps

        return self._transition(action)

    # -- proposing ----------------------------------------------------------------------------
    def pending_proposal(self) -> Proposal | None:
        p = self.state.step.proposal
        if p is None:
            return None
        out = p.output
        return Proposal(step_index=p.step_index, step=p.step, cycle=out.cycle, instruction=p.instruction,
                        reasoning=out.reasoning, script=out.script, base_script=p.base_script, text=out.text,
                        teacher=encode(out.teacher) if out.teacher else {}, run=p.run,
                        warnings=list(p.warnings))

    def propose(self, *, emit: EventSink | None = None, on_token: Callable[[str, str], None] | None = None,
                cancel: threading.Event | None = None) -> Proposal:
        """Run cycles (lead -> worker -> run) until a script runs cleanly; leave it for review.

        A cancel or a teacher error midway drops the unsaved cycle: the state is reloaded from the
        store, which holds everything up to the last completed transition.
        """
        return self._transition(lambda: self._propose(emit or ignore, on_token, cancel))

    def _propose(self, emit: EventSink, on_token, cancel) -> Proposal:
        if self.status == SessionStatus.REVIEW:
            proposal = self.pending_proposal()
            assert proposal is not None
            emit(SessionEvent(EventKind.RUN, proposal.run.log(), {"ok": proposal.run.ok, "script": proposal.script}))
            emit(SessionEvent(EventKind.PROPOSAL, proposal.diff(),
                              {"run": proposal.run.as_dict(), "warnings": proposal.warnings}))
            return proposal
        if self.status == SessionStatus.PLANNING:
            raise SessionError("plan the session first")
        if self.status == SessionStatus.DONE:
            raise SessionError("every step of this session is done; start a new session")
        step = self.state.step
        index = self.state.step_index
        step.stall = None
        self.steps[index].status = StepStatus.RUNNING
        self.state.status = SessionStatus.WORKING
        workers = self.worker_teachers()
        switch_after = self.config.session.switch_teacher_after
        budget = switch_after * len(workers)
        last_reason = ""
        for _ in range(budget):
            teacher = workers[step.teacher_index % len(workers)]
            ctx = step.context
            base_script = ctx.failed_script if ctx.kind == ContextKind.ERROR and ctx.failed_script else self.current_script
            given = project_context.for_prompt(self.state.project, base_script)  # issue 25: None outside project mode
            project_map = given.text if given else None
            instruction = self._instruction(ctx, on_token, cancel, emit, project_map)
            call = self.prompts.worker(
                self.state.request, self.step_text, instruction, base_script,
                error=ctx.error if ctx.kind == ContextKind.ERROR else None,
                feedback=ctx.feedback if ctx.kind in (ContextKind.REDO, ContextKind.FURTHER_EDIT) else None,
                project_map=project_map)
            messages = messages_for(call, teacher)
            said = instruction or self.step_text
            step.cycle += 1
            self.steps[index].cycles = step.cycle
            if step.prompt is None:
                step.prompt = Prompt(messages_of(messages), said, base_script,
                                     context=given.record if given else None)  # issue 25: the row names its context
            emit(SessionEvent(EventKind.INSTRUCTION, said, {"cycle": step.cycle, "teacher": teacher.identity.name}))
            found = self._candidates(call, teacher, emit, on_token, cancel)
            best, repeated = candidates.choose(found, last_script=step.last_script, script_before=self.current_script,
                                               request=self._change_request())
            side = self._worker_side_chain(messages, said, teacher, best.script if best else None, best is not None,
                                           emit, cancel)
            failed_rows = self._candidate_rows(found, teacher)
            if best is None:
                failure = candidates.first_failure(found)
                assert failure is not None
                said_first = " ".join(failure.gen.text.split())[:80]
                last_reason = (f"teacher '{teacher.identity.name}' gave no proposal that runs ({failure.kind}: "
                               f"{failure.problem[:200]}; it answered {said_first!r})")
                emit(SessionEvent(EventKind.FAILED, last_reason, {"reason": failure.problem, "kind": failure.kind.value}))
                step.context = self._failure_context(failure)
                self._count_failure(workers, emit)
                self._save_cycle(failed_rows, side, emit)
                continue
            assert best.answer is not None and best.run is not None
            gen, answer, run = best.gen, best.answer, best.run
            emit(SessionEvent(EventKind.RUN, run.log(), {"ok": run.ok, "script": answer.script}))
            output = output_record(gen, teacher, Agent.WORKER, step.cycle, reasoning=answer.reasoning,
                                   script=answer.script)
            lp = gen.logprobs()
            generated = None
            if lp is not None:
                generated = logprob_record(self.store, lp, source=LogprobSource.GENERATION,
                                           scorer=identity_of(gen, teacher), prompt_sha=Prompt(messages_of(messages)).sha,
                                           constraint=output.constraint, thinking=gen.thinking_logprobs())
            warnings = []
            if repeated:
                warnings.append(f"The teacher '{teacher.identity.name}' repeated itself: this is the proposal you "
                                   "were shown last, and no other candidate ran.")
            step.proposal = PendingProposal(output=output, step_index=index, step=self.step_text,
                                            instruction=said, base_script=base_script,
                                            messages=messages_of(messages), logprobs=generated, run=run,
                                            warnings=warnings)
            step.last_script = answer.script
            self.steps[index].status = StepStatus.REVIEW
            self.state.status = SessionStatus.REVIEW
            self._save_cycle(failed_rows, side, emit)
            proposal = self.pending_proposal()
            assert proposal is not None
            emit(SessionEvent(EventKind.PROPOSAL, proposal.diff(), {"run": run.as_dict(), "warnings": proposal.warnings,
                                                                    "candidate": best.index, "of": len(found)}))
            return proposal
        self.state.status = SessionStatus.STALLED
        self.steps[index].status = StepStatus.STALLED
        names = [w.identity.name for w in workers]
        step.stall = StallInfo(attempts=budget, reason=last_reason, teachers=names)
        step.teacher_index = 0
        step.failures = 0
        self._save()
        emit(SessionEvent(EventKind.STALLED, f"step {index + 1} stalled after {budget} attempts: {last_reason}",
                          {"attempts": budget, "reason": last_reason}))
        raise AttemptsExhausted(
            f"step {index + 1} failed {budget} times across {len(workers)} worker teacher(s) ({last_reason[:400]}); "
            f"the session is saved: try again, edit or skip the step, or add a stronger teacher "
            f"(headless: `shake session --resume {self.id}`)"
        )

    # -- the lead's instruction and the worker's candidates -----------------------------------------
    def _change_request(self) -> str:
        return f"{self.state.request}\n{self.step_text}"

    def _instruction(self, ctx: StepContext, on_token, cancel, emit: EventSink, project_map: str | None) -> str | None:
        """The lead's instruction for this cycle, or None when it gave none worth passing on.

        An instruction that echoes the prompt (a format placeholder, a sentence of the system text, the
        format's example) is asked for once more with another seed, then dropped: the worker always has
        the request and the step, so a missing instruction costs little and an echoed one misleads.
        """
        call = self.prompts.lead(
            self.state.request, self.step_text, self.current_script,
            error=ctx.error if ctx.kind == ContextKind.ERROR else None,
            failed_script=ctx.failed_script,
            feedback=ctx.feedback,
            feedback_kind=ctx.kind.value if ctx.kind in (ContextKind.REDO, ContextKind.FURTHER_EDIT) else None,
            previous_output=ctx.previous_output,
            project_map=project_map,  # issue 25
        )
        for draw in range(LEAD_DRAWS):
            gen, teacher = self.calls.ask("lead", call, cycle=self.state.step.cycle, draw=draw,
                                          on_token=(lambda t: on_token("lead", t)) if on_token else None,
                                          cancel=cancel, emit=emit)
            text, fallback = lead.parse_instruction(gen, self.step_text)
            if fallback:
                emit(SessionEvent(EventKind.NOTE, "the lead gave no instruction; the worker works from the request and the step"))
                return None
            reason = echo.echo_reason(text, self._echo_sources)
            if reason is None:
                self._side_chain_agent(Agent.LEAD, call, gen, teacher, emit, cancel)
                return text
            emit(SessionEvent(EventKind.NOTE, f"the lead's instruction was not used: {reason} ({text[:80]!r})"))
        return None

    def _candidates(self, call: PromptCall, teacher: Teacher, emit: EventSink, on_token, cancel) -> list[candidates.Candidate]:
        """The worker's candidates for this cycle, each judged and (when well-formed) run; see
        `engine/session/candidates.py`. The first is sampled at the worker's temperature, the others
        at `[session] candidate_temperature`, each with its own seed."""
        name = teacher.identity.name
        n = self.config.teacher(name).candidate_count(teacher.identity.backend)
        found: list[candidates.Candidate] = []
        for draw in range(n):
            gen, _ = self.calls.ask("worker", call, cycle=self.state.step.cycle, teachers=[teacher], draw=draw,
                                    temperature=None if draw == 0 else self.config.session.candidate_temperature,
                                    on_token=(lambda t: on_token("worker", t)) if on_token else None,
                                    cancel=cancel, emit=emit)
            emit(SessionEvent(EventKind.WORKER, gen.text, {"teacher": name, "candidate": draw, "of": n}))
            judged = self._judge_candidate(draw, gen, cancel)
            found.append(judged)
            if judged.run is not None:  # every run's log is shown as it comes; the chosen one's again at the end
                emit(SessionEvent(EventKind.RUN, judged.run.log(), {"ok": judged.run.ok, "script": judged.script}))
            diff = unified_diff(self.current_script, judged.script) if judged.script else ""
            more = n - draw - 1
            said = (f"candidate {draw + 1} of {n} runs" if judged.kind == candidates.CandidateKind.RUNS
                    else f"candidate {draw + 1} of {n}: {judged.kind} ({judged.problem[:120]})")
            emit(SessionEvent(EventKind.CANDIDATE, said + (f"; {more} more coming" if more else ""),
                              {"index": draw, "of": n, "kind": judged.kind.value, "problem": judged.problem,
                               "script": judged.script, "diff": diff, "remaining": more}))
        return found

    def _judge_candidate(self, index: int, gen: Generation, cancel) -> candidates.Candidate:
        kinds = candidates.CandidateKind
        try:
            answer = worker.parse_answer(gen)
        except OutputFormatError as err:
            return candidates.Candidate(index, gen, kinds.MALFORMED, str(err))
        reason = echo.echo_reason(answer.reasoning, self._echo_sources) if answer.reasoning else None
        if reason is None and " ".join(answer.script.split()) in self._echo_sources_scripts:
            reason = "its script is the answer format's example"
        if reason is not None:
            return candidates.Candidate(index, gen, kinds.ECHO, f"the answer is an echo: {reason}", answer)
        problem = cheat_guard.proposal_problem(self.current_script, answer.script, self._change_request())
        if problem is not None:
            return candidates.Candidate(index, gen, kinds.NOOP, problem, answer)
        run = run_script(answer.script, self.config.runner, cancel=cancel, spec=self.state.project)  # issue 25
        if not run.ok:
            return candidates.Candidate(index, gen, kinds.FAILED, run.error_text(), answer, run)
        return candidates.Candidate(index, gen, kinds.RUNS, "", answer, run)

    def _candidate_rows(self, found: list[candidates.Candidate], teacher: Teacher) -> list[Row]:
        """A rejected row (kind `error`, the reason in `error`) for each candidate that failed its run or
        changed nothing: the paper's rule for a failed run. Malformed answers and echoes hold no
        script to learn from and write none; a script met twice in one cycle is stored once."""
        rows: list[Row] = []
        seen: set[str] = set()
        for c in found:
            if c.kind not in (candidates.CandidateKind.FAILED, candidates.CandidateKind.NOOP) or c.answer is None:
                continue
            if c.answer.script in seen:
                continue
            seen.add(c.answer.script)
            output = output_record(c.gen, teacher, Agent.WORKER, self.state.step.cycle, reasoning=c.answer.reasoning,
                                   script=c.answer.script)
            rows.append(self._worker_row(Rejected(**output.__dict__, kind=RejectedKind.ERROR, error=c.problem),
                                         self.state.step.cycle))
        return rows

    def _save_cycle(self, failed_rows: list[Row], side: list[Row], emit: EventSink) -> None:
        """Commit the cycle's state with its candidates' error rows and side-chain rows; say each error row."""
        ids = self._save(new_rows=failed_rows + side)
        for row_id in ids[: len(failed_rows)]:
            emit(SessionEvent(EventKind.ROW, f"rejected (error) row {row_id}", {"kind": "error"}))

    def _failure_context(self, failure: candidates.Candidate) -> StepContext:
        """What the next cycle's lead and worker are told when no candidate ran."""
        if failure.kind == candidates.CandidateKind.FAILED:
            return StepContext(ContextKind.ERROR, error=failure.problem, failed_script=failure.script)
        if failure.kind == candidates.CandidateKind.MALFORMED:
            return StepContext(ContextKind.ERROR, error=f"The programmer's answer could not be used: {failure.problem}. "
                                                        "The answer must hold one ```python block with the whole script.")
        return StepContext(ContextKind.ERROR, error=f"The programmer's answer could not be used: {failure.problem}.")

    def _worker_side_chain(self, messages, instruction, teacher, script, ran, emit, cancel) -> list[Row]:
        if not self.side_chain.enabled:
            return []
        rejected = self.side_chain.worker_negative(messages, instruction, teacher, script, ran, session_id=self.id,
                                                   step_index=self.state.step_index, cycle=self.state.step.cycle,
                                                   emit=emit, cancel=cancel, spec=self.state.project)  # issue 25
        return [self._worker_row(rejected, self.state.step.cycle)] if rejected else []

    def _count_failure(self, workers: list[Teacher], emit: EventSink) -> None:
        step = self.state.step
        step.failures += 1
        if step.failures >= self.config.session.switch_teacher_after and len(workers) > 1:
            step.teacher_index = (step.teacher_index + 1) % len(workers)
            step.failures = 0
            name = workers[step.teacher_index].identity.name
            emit(SessionEvent(EventKind.SWITCH, f"the worker switches to teacher '{name}'", {"teacher": name}))

    def _worker_row(self, rejected: Rejected | None, cycle: int) -> Row:
        assert self.state.step.prompt is not None
        return Row(agent=Agent.WORKER, step_index=self.state.step_index, step=self.step_text, cycle=cycle,
                   prompt=self.state.step.prompt, rejected=rejected)

    # -- feedback -----------------------------------------------------------------------------
    def classify(self, feedback: str, *, cancel: threading.Event | None = None) -> Classification:
        text = analyzer.check_feedback(feedback)
        explicit = analyzer.explicit_label(text)
        if explicit is not None:
            return explicit
        call = self.prompts.analyzer(text, self.step_text)
        gen, teacher = self.calls.ask("analyzer", call, cycle=self.state.step.cycle, cancel=cancel)
        if self.side_chain.enabled:
            self._analyzer = self.side_chain.analyzer_answers(text, messages_for(call, teacher), gen, teacher, session_id=self.id,
                                                              step_index=self.state.step_index,
                                                              cycle=self.state.step.cycle, cancel=cancel)
        return analyzer.classify(gen, text, teacher=teacher, call=call, settings=self.config.analyzer,
                                 form=answer_form(teacher))

    def _analyzer_rows(self, classification: Classification, emit: EventSink) -> list[Row]:
        """The analyzer's side-chain row, decided now that the label is final."""
        answers, self._analyzer = self._analyzer, None
        if answers is None or answers.feedback != classification.feedback:
            return []
        row = self.side_chain.analyzer_row(answers, classification.label, confirmed=classification.source not in ("default", "unsure"),
                                           step_index=self.state.step_index, step_text=self.step_text,
                                           cycle=self.state.step.cycle, emit=emit)
        return [row] if row else []

    def apply_feedback(self, classification: Classification, *, emit: EventSink | None = None) -> None:
        """Store what the label requires (see the module docstring). A failed write leaves both the
        store and this object as they were."""
        emit = emit or ignore
        self._transition(lambda: self._apply_feedback(classification, emit))

    def _require_review(self) -> PendingProposal:
        if self.status != SessionStatus.REVIEW or self.state.step.proposal is None:
            raise SessionError("there is no proposal waiting for review")
        return self.state.step.proposal

    def _apply_feedback(self, classification: Classification, emit: EventSink) -> None:
        proposal = self._require_review()
        step = self.state.step
        index = self.state.step_index
        label = classification.label
        self._agent_rows += self._analyzer_rows(classification, emit)
        if label in ("redo", "further_edit"):
            rejected = Rejected(**proposal.output.__dict__, kind=RejectedKind(label), feedback=classification.feedback)
            if label == "redo":
                step.context = StepContext(ContextKind.REDO, feedback=classification.feedback,
                                           previous_output=proposal.output.script)
                self._count_failure(self.worker_teachers(), emit)
            else:
                self.state.current_script = proposal.output.script
                step.context = StepContext(ContextKind.FURTHER_EDIT, feedback=classification.feedback)
            step.proposal = None
            self.steps[index].status = StepStatus.RUNNING
            self.state.status = SessionStatus.WORKING
            ids = self._save(new_rows=[self._worker_row(rejected, proposal.output.cycle)])
            emit(SessionEvent(EventKind.ROW, f"rejected ({label}) row {ids[0]}", {"kind": label}))
            return
        if label != "accepted":
            raise SessionError(f"unknown feedback label {label!r}")
        self._accept(proposal.output, proposal.logprobs, classification.feedback, [], emit)

    def accept_user_edit(self, script: str, *, emit: EventSink | None = None) -> None:
        """The user's own edit of the proposal is the step's accepted output (`origin = "user_edit"`). The
        proposal it replaces becomes a Further-edit row when the edit changed it; soft labels come from
        a teacher that can score (hard labels otherwise).

        On a stalled step there is no proposal: the user's script is the answer the teachers failed to
        give, and the failed attempts of the step's wording already stored as rejected rows get it as their
        chosen (a step reworded since has no prompt yet: it gets the one a cycle without a lead instruction
        would send)."""
        emit = emit or ignore

        def action() -> None:
            text = script if script.endswith("\n") or not script else script + "\n"
            try:
                compile(text, "edited script", "exec")
            except SyntaxError as err:
                raise InputError(f"the edited script does not parse (line {err.lineno}: {err.msg}); nothing was stored") from None
            if self.status == SessionStatus.STALLED:
                if self.state.step.prompt is None:
                    self.state.step.prompt = self._prompt_without_lead()
                self.state.step.stall = None
                self._accept(self._user_output(text, self.state.step.cycle), None, "", [], emit)
                return
            proposal = self._require_review()
            if text == proposal.output.script:
                self._accept(proposal.output, proposal.logprobs, "", [], emit)
                return
            out = proposal.output
            edited = self._user_output(text, out.cycle)
            refused = Rejected(**out.__dict__, kind=RejectedKind.FURTHER_EDIT, feedback="(the user edited it by hand)")
            self._accept(edited, None, "", [self._worker_row(refused, out.cycle)], emit)

        self._transition(action)

    def _prompt_without_lead(self) -> Prompt:
        """The step's prompt when the user writes its script before any cycle ran under its wording (a
        step reworded, then written with `e`): the worker's messages with no lead instruction, as a cycle
        whose lead gave none would have sent them (to the worker's first teacher)."""
        given = project_context.for_prompt(self.state.project, self.current_script)
        call = self.prompts.worker(self.state.request, self.step_text, None, self.current_script,
                                   project_map=given.text if given else None)
        messages = messages_for(call, self.worker_teachers()[0])
        return Prompt(messages_of(messages), self.step_text, self.current_script,
                      context=given.record if given else None)

    @staticmethod
    def _user_output(script: str, cycle: int) -> Output:
        return Output(text=worker.answer_text("The user edited the script by hand.", script),
                      reasoning="The user edited the script by hand.", script=script, agent=Agent.WORKER,
                      teacher=None, cycle=cycle, created_at=now_iso(), origin=Origin.USER_EDIT)

    def _accept(self, output: Output, generated, feedback: str, extra_rows: list[Row], emit: EventSink) -> None:
        index = self.state.step_index
        step = self.state.step
        assert step.prompt is not None
        chosen = Chosen(**output.__dict__, feedback=feedback,
                        logprobs=self.soft_labels.for_chosen(step.prompt, output, generated, emit),
                        context_logprobs=self.soft_labels.for_context(step.prompt, output, generated))
        existing = self.store.worker_rows(self.id, index)
        taught = any(r.rejected is not None and r.rejected.kind in TEACHER_REJECTIONS for r in existing + extra_rows)
        new_rows = extra_rows + ([] if taught else [self._worker_row(None, output.cycle)])
        self.state.current_script = output.script
        self.steps[index].status = StepStatus.ACCEPTED
        self._next_step()
        self._save(new_rows=new_rows, chosen_for_step=(index, chosen))
        emit(SessionEvent(EventKind.ACCEPTED, f"step {index + 1} accepted", {"step_index": index}))
        if self.status == SessionStatus.DONE:
            emit(SessionEvent(EventKind.DONE, "every step is done", {"script": self.current_script}))

    def _next_step(self) -> None:
        self.state.step_index += 1
        self.state.step = StepState()
        self.state.status = SessionStatus.DONE if self.state.step_index >= len(self.steps) else SessionStatus.WORKING

    # -- the user steers ----------------------------------------------------------------------
    def skip_step(self, *, emit: EventSink | None = None) -> None:
        """Leave the current step undone and go on; its rows stay without a chosen (never trained on)."""
        emit = emit or ignore

        def action() -> None:
            if self.status in (SessionStatus.PLANNING, SessionStatus.DONE):
                raise SessionError("there is no step to skip")
            index = self.state.step_index
            self.steps[index].status = StepStatus.SKIPPED
            self._next_step()
            self._save()
            emit(SessionEvent(EventKind.SKIPPED, f"step {index + 1} skipped", {"step_index": index}))
            if self.status == SessionStatus.DONE:
                emit(SessionEvent(EventKind.DONE, "every step is done", {"script": self.current_script}))

        self._transition(action)

    def edit_step(self, text: str) -> None:
        """Reword the current step: the step starts a new prompt, which the next cycle writes from the new
        wording and the current script.

        The rows written so far keep their prompt and their `step` (the old wording): they answer the old
        instruction, so the chosen that answers the new one is never written into them (see
        `worker_rows_of_step`). A proposal waiting for review answers the old wording too: it is dropped
        (no row, the user never judged it) and ctrl+g asks for one under the new wording."""
        text = " ".join(text.split())
        if not text:
            raise InputError("the step text is empty")

        def action() -> None:
            if self.status not in (SessionStatus.WORKING, SessionStatus.STALLED, SessionStatus.REVIEW):
                raise SessionError("there is no current step to edit")
            index = self.state.step_index
            if text == self.steps[index].text:
                return
            self.steps[index].text = text
            step = self.state.step
            step.prompt = None
            step.context = StepContext()  # the fix or feedback the lead was to get was about the old wording
            if self.status == SessionStatus.REVIEW:
                step.proposal = None
                self.steps[index].status = StepStatus.RUNNING
                self.state.status = SessionStatus.WORKING
            self._save()

        self._transition(action)

