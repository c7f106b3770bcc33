"""A Precision Shaking session: a state machine over project steps and cycles.

The rules (the paper's Mechanism section; `shared/README.md` §1):

- The step's `prompt` is the worker's input in the step's first cycle: the lead's first instruction
  with the current script.
- The worker's script fails when run -> new row, `rejected` = that output (kind `error`); the error
  goes back to the lead, which writes a fix instruction.
- Feedback *Redo* -> new row, `rejected` = that output (kind `redo`); a new cycle starts from the
  unchanged current script.
- Feedback *Further edit* -> new row, `rejected` = that output (kind `further_edit`); the current
  script becomes this output; the lead writes a refinement instruction.
- Feedback *Accepted* -> `chosen` = the accepted output (hard label and teacher log-probabilities) is
  written into every row of the step; if the step has no rows, one row with `rejected` empty. The
  current script becomes the accepted one and the next step begins.

Malformed worker output (no single whole script) is a failed attempt with its reason and writes no
row. After `switch_teacher_after` failed attempts (errors, malformed outputs, Redos) the worker moves
to its next teacher. All state lives in the store after every transition, so a session can stop at
any point and resume.
"""

from __future__ import annotations

import difflib
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.agents import analyzer, cheat_guard, judge, lead, planner, worker
from engine.agents.analyzer import Classification
from engine.agents.call import generate, sampling_for
from engine.config import Config
from engine.errors import (
    AttemptsExhausted,
    InputError,
    OutputFormatError,
    ScoringUnsupported,
    SessionError,
    TeacherError,
    TeacherUnavailable,
)
from engine.logprobs import TokenLogprobs
from engine.runner import RunResult, run_script
from engine.store.store import DatasetStore, now_iso
from engine.prompts import PromptCall, load_prompt_book
from engine.teachers.base import Generation, Teacher, TokenCallback, answer_form
from engine.teachers.pool import TeacherPool

MAX_SCRIPT_BYTES = 200_000


@dataclass
class SessionEvent:
    kind: str  # plan, instruction, worker, run, failed, switch, proposal, row, accepted, done, note
    text: str
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[SessionEvent], None]


@dataclass
class Proposal:
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

    def diff(self) -> str:
        return unified_diff(self.base_script, self.script) or "(no change: the proposal is identical to the current script)\n"


def unified_diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "current/script.py", "proposed/script.py"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def read_script(path: Path) -> str:
    path = Path(path)
    if not path.exists():
        raise InputError(f"no script at {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a Python file")
    data = path.read_bytes()
    if len(data) > MAX_SCRIPT_BYTES:
        raise InputError(f"{path} is {len(data)} bytes; scripts up to {MAX_SCRIPT_BYTES} bytes are supported")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    try:
        compile(text, str(path), "exec")
    except SyntaxError as err:
        raise InputError(
            f"{path} does not parse (line {err.lineno}: {err.msg}); fix the syntax error first, "
            "the engine needs a script that runs as its starting point"
        ) from None
    return text if text.endswith("\n") or not text else text + "\n"


def _fresh_step() -> dict[str, Any]:
    return {"prompt": None, "cycle": 0, "teacher_index": 0, "failures": 0, "context": {"kind": "none"}, "proposal": None}


class Session:
    def __init__(self, store: DatasetStore, pool: TeacherPool, config: Config, state: dict[str, Any]) -> None:
        self.store = store
        self.pool = pool
        self.config = config
        self.state = state
        self.prompts = load_prompt_book(config)
        self._agent_rows: list[dict[str, Any]] = []  # side-chain rows waiting for the next commit

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def start(
        cls, store: DatasetStore, pool: TeacherPool, config: Config, script_path: Path, request: str
    ) -> Session:
        script = read_script(script_path)
        request = request.strip()
        if not request:
            raise InputError("the change request is empty; say what the script should do differently")
        pool.require_healthy()  # before anything is written
        state = {
            "script_path": str(Path(script_path).resolve()),
            "request": request,
            "original_script": script,
            "current_script": script,
            "status": "planning",
            "steps": [],
            "step_index": 0,
            "step": _fresh_step(),
        }
        session_id = store.create_session(state)
        return cls(store, pool, config, store.load_state(session_id))

    @classmethod
    def resume(cls, store: DatasetStore, pool: TeacherPool, config: Config, session_id: str) -> Session:
        return cls(store, pool, config, store.load_state(session_id))

    @property
    def id(self) -> str:
        return self.state["session_id"]

    @property
    def status(self) -> str:
        return self.state["status"]

    @property
    def current_script(self) -> str:
        return self.state["current_script"]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.state["steps"]

    @property
    def step_text(self) -> str:
        return self.steps[self.state["step_index"]]["text"]

    def _save(self, *, new_rows: list[dict[str, Any]] = (), **kwargs: Any) -> list[str]:
        ids = self.store.commit(self.id, state=self.state, new_rows=list(new_rows) + self._agent_rows, **kwargs)
        self._agent_rows = []
        return ids

    def _reload(self) -> None:
        """Back to the last saved state; unsaved side-chain rows go with the cycle that made them."""
        self.state = self.store.load_state(self.id)
        self._agent_rows = []

    # -- agents -------------------------------------------------------------------------------
    def _ask(
        self,
        agent: str,
        call: PromptCall,
        *,
        teachers: list[Teacher] | None = None,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        emit: EventSink | None = None,
        side_chain: bool = False,
    ) -> Generation:
        """Call the agent's teachers in order; an unreachable one hands over to the next. With
        `side_chain`, the same messages also go to a student (see `_side_chain_agent`)."""
        teachers = teachers if teachers is not None else self.pool.for_agent(agent)
        sampling_cfg = self.config.sampling[agent]
        last: TeacherError | None = None
        for teacher in teachers:
            tcfg = self.config.teacher(teacher.identity.name)
            sampling = sampling_for(sampling_cfg, seed=tcfg.seed + self.state["step"]["cycle"], top_logprobs=tcfg.top_logprobs)
            try:
                gen = generate(teacher, call, sampling, on_token=on_token, cancel=cancel)
            except TeacherUnavailable as err:
                last = err
                if emit:
                    emit(SessionEvent("note", f"{agent}: {err}; trying the next teacher"))
                continue
            if side_chain and self.config.student.mode == "side-chain":
                self._agent_rows += self._side_chain_agent(agent, call.messages(answer_form(teacher)), gen, teacher,
                                                           emit, cancel)
            return gen
        assert last is not None
        raise last

    def _student_answer(self, agent: str, messages, cycle: int, cancel) -> tuple[str, Teacher, Generation]:
        """The side-chain student (mixed policy) answers the agent's messages; no logprobs needed."""
        name = self._pick_student(cycle)
        student = self.pool.get(name)
        sampling = sampling_for(self.config.sampling[agent], seed=self.config.teacher(name).seed + cycle, top_logprobs=0)
        return name, student, student.generate(messages, sampling, cancel=cancel)

    @staticmethod
    def _student_rejected(gen: Generation, student: Teacher, agent: str, cycle: int, reason: str, *,
                          reasoning: str = "", script: str = "") -> dict[str, Any]:
        identity = (gen.identity or student.identity).as_dict()
        return {"text": gen.text, "reasoning": reasoning, "script": script, "kind": "student", "teacher": identity,
                "student_version": identity["model"], "agent": agent, "cycle": cycle,
                "sampling": gen.sampling.as_dict() if gen.sampling else {}, "created_at": now_iso(),
                "error": reason, "feedback": None}

    @staticmethod
    def _logprobs_record(blob: str, lp: TokenLogprobs, source: str, teacher: dict[str, str]) -> dict[str, Any]:
        return {"blob": blob, "n_tokens": len(lp), "k": lp.k, "has_ids": lp.has_ids, "source": source, "teacher": teacher}

    def _side_chain_agent(self, agent: str, messages, gen: Generation, teacher: Teacher, emit, cancel) -> list[dict]:
        """The planner's, lead's or analyzer's prompt also goes to a student. The teacher's answer is the
        one the engine uses, so it is this row's chosen (with its generation log-probabilities); the
        student's answer is its rejected when it is worse: another label for the analyzer, the
        teacher's verdict for the others (undecided: nothing stored)."""
        emit = emit or (lambda event: None)
        cycle = self.state["step"]["cycle"]
        name, student, s_gen = self._student_answer(agent, messages, cycle, cancel)
        reason = None
        if agent == "analyzer":
            theirs, mine = analyzer.answer_label(gen), analyzer.answer_label(s_gen)
            if mine != theirs:
                reason = f"label {mine} where the teacher said {theirs}"
        elif not s_gen.text.strip():
            reason = "empty answer"
        elif self.config.student.judge:
            request = messages[-1]["content"]
            verdict = judge.parse_verdict(self._ask("worker", self.prompts.judge_text(request, gen.text, s_gen.text),
                                                    teachers=[teacher], cancel=cancel, emit=emit))
            if verdict == "A":
                reason = f"the teacher '{teacher.identity.name}' judged its own answer better"
        if reason is None:
            return []
        lp = gen.logprobs()
        identity = (gen.identity or teacher.identity).as_dict()
        steps = self.steps
        index = self.state["step_index"] if steps and self.state["step_index"] < len(steps) else -1
        emit(SessionEvent("note", f"side-chain: the {agent}'s student '{name}' stored as a negative ({reason[:60]})"))
        return [{
            "agent": agent, "step_index": index, "step": steps[index]["text"] if index >= 0 else "planning",
            "cycle": cycle, "prompt": {"messages": messages, "instruction": "", "script": ""},
            "chosen": {"text": gen.text, "reasoning": "", "script": "", "teacher": identity, "agent": agent,
                       "constraint": gen.constraint, "prompt_version": gen.prompt_version,
                       "sampling": gen.sampling.as_dict() if gen.sampling else {}, "cycle": cycle, "created_at": now_iso(),
                       "logprobs": self._logprobs_record(self.store.put_logprobs(lp), lp, "generation", identity)
                       if lp else None},
            "rejected": self._student_rejected(s_gen, student, agent, cycle, reason),
        }]

    # -- planning -----------------------------------------------------------------------------
    def plan(self, *, emit: EventSink | None = None, max_steps: int | None = None, cancel=None) -> list[str]:
        if self.status != "planning":
            return [s["text"] for s in self.steps]
        limit = min(max_steps or self.config.session.max_steps, self.config.session.max_steps)
        gen = self._ask(
            "planner", self.prompts.planner(self.state["request"], self.current_script, limit), cancel=cancel, emit=emit,
            side_chain=True,
        )
        plan = planner.parse_plan(gen, self.state["request"], limit)
        if plan.used_fallback and emit:
            emit(SessionEvent("note", "the planner gave no numbered steps; the request is the only step"))
        self.state["steps"] = [{"text": s, "status": "pending", "cycles": 0} for s in plan.steps]
        self.state["status"] = "working"
        self._save()
        if emit:
            emit(SessionEvent("plan", "\n".join(f"{i + 1}. {s}" for i, s in enumerate(plan.steps)), {"steps": plan.steps}))
        return plan.steps

    # -- one proposal -------------------------------------------------------------------------
    def worker_teachers(self) -> list[Teacher]:
        """The worker's teachers in order; in student-first mode the latest student comes first."""
        workers = self.pool.for_agent("worker")
        student = self.config.student
        if student.mode == "student-first":
            latest = student.teachers[-1]
            return [self.pool.get(latest)] + [w for w in workers if w.identity.name != latest]
        return workers

    # -- side-chain ---------------------------------------------------------------------------
    def _pick_student(self, cycle: int) -> str:
        """ORPO-Distill's mixed policy: the first student answers `first_share` of the prompts."""
        names = self.config.student.teachers
        if len(names) == 1:
            return names[0]
        seed = int(hashlib.sha256(self.id.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng([seed, self.state["step_index"], cycle])
        return names[0] if rng.random() < self.config.student.first_share else names[-1]

    def _side_chain(self, messages, instruction: str, teacher: Teacher, teacher_script: str | None,
                    teacher_ran: bool, cycle: int, emit: EventSink, cancel) -> list[dict[str, Any]]:
        """Send the worker's prompt to a student too; store its answer as a negative when it is worse.

        Worse: it is malformed, or it fails to run where the teacher's script ran, or both ran and the
        teacher, asked to judge, prefers its own. Undecided verdicts store nothing.
        """
        if self.config.student.mode != "side-chain":
            return []
        name, student, gen = self._student_answer("worker", messages, cycle, cancel)
        reasoning, script, reason = "", "", None
        try:
            answer = worker.parse_answer(gen)
            reasoning, script = answer.reasoning, answer.script
        except OutputFormatError as err:
            reason = f"malformed: {err}"
        if reason is None:
            run = run_script(script, self.config.runner, cancel=cancel)
            if not run.ok and teacher_ran:
                reason = f"failed when run where the teacher's script ran: {run.error_text(500)}"
            elif run.ok and teacher_ran and teacher_script is not None and self.config.student.judge:
                verdict_gen = self._ask("worker", self.prompts.judge(instruction, teacher_script, script),
                                        teachers=[teacher], cancel=cancel, emit=emit)
                verdict = judge.parse_verdict(verdict_gen)
                if verdict == "A":
                    reason = f"the teacher '{teacher.identity.name}' judged its own answer better"
                elif verdict is None:
                    emit(SessionEvent("note", f"side-chain: the judge was undecided about student '{name}'"))
        if reason is None:
            emit(SessionEvent("note", f"side-chain: student '{name}' was not worse; nothing stored"))
            return []
        rejected = self._student_rejected(gen, student, "worker", cycle, reason, reasoning=reasoning, script=script)
        emit(SessionEvent("note", f"side-chain: student '{name}' stored as a negative ({reason[:80]})"))
        return [self._row(rejected, cycle)]

    def pending_proposal(self) -> Proposal | None:
        data = self.state["step"]["proposal"]
        if not data:
            return None
        return Proposal(**{**{k: v for k, v in data.items() if k in Proposal.__dataclass_fields__}, "run": RunResult(**data["run"])})

    def propose(
        self,
        *,
        emit: EventSink | None = None,
        on_token: Callable[[str, str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Proposal:
        """Run cycles (lead -> worker -> run) until a script runs cleanly; leave it for review.

        A cancel or a teacher error midway drops the unsaved cycle: the state is reloaded from the
        store, which holds everything up to the last completed transition.
        """
        try:
            return self._propose(emit=emit, on_token=on_token, cancel=cancel)
        except BaseException:
            self._reload()
            raise

    def _propose(self, *, emit, on_token, cancel) -> Proposal:
        if self.status == "review":
            proposal = self.pending_proposal()
            assert proposal is not None
            if emit:
                emit(SessionEvent("run", proposal.run.log(), {"ok": proposal.run.ok, "script": proposal.script}))
                emit(SessionEvent("proposal", proposal.diff(), {"run": proposal.run.as_dict(), "cheat": self._cheat(proposal)}))
            return proposal
        if self.status == "planning":
            raise SessionError("plan the session first")
        if self.status == "done":
            raise SessionError("every step of this session is accepted; start a new session")
        emit = emit or (lambda event: None)
        step = self.state["step"]
        index = self.state["step_index"]
        self.steps[index]["status"] = "running"
        self.state["status"] = "working"
        workers = self.worker_teachers()
        switch_after = self.config.session.switch_teacher_after
        budget = switch_after * len(workers)
        for _ in range(budget):
            teacher = workers[step["teacher_index"] % len(workers)]
            ctx = step["context"]
            base_script = ctx.get("failed_script") if ctx["kind"] == "error" and ctx.get("failed_script") else self.current_script
            lead_gen = self._ask(
                "lead",
                self.prompts.lead(
                    self.state["request"],
                    self.step_text,
                    self.current_script,
                    error=ctx.get("error") if ctx["kind"] == "error" else None,
                    failed_script=ctx.get("failed_script"),
                    feedback=ctx.get("feedback"),
                    feedback_kind=ctx["kind"] if ctx["kind"] in ("redo", "further_edit") else None,
                    previous_output=ctx.get("previous_output"),
                ),
                on_token=(lambda t: on_token("lead", t)) if on_token else None,
                cancel=cancel,
                emit=emit,
                side_chain=True,
            )
            instruction, fallback = lead.parse_instruction(lead_gen, self.step_text)
            if fallback:
                emit(SessionEvent("note", "the lead gave no instruction; using the step text"))
            call = self.prompts.worker(instruction, base_script)
            messages = call.messages(answer_form(teacher))
            step["cycle"] += 1
            self.steps[index]["cycles"] = step["cycle"]
            if step["prompt"] is None:
                step["prompt"] = {"messages": messages, "instruction": instruction, "script": base_script}
            emit(SessionEvent("instruction", instruction, {"cycle": step["cycle"], "teacher": teacher.identity.name}))
            gen = self._ask(
                "worker",
                call,
                teachers=[teacher],
                on_token=(lambda t: on_token("worker", t)) if on_token else None,
                cancel=cancel,
                emit=emit,
            )
            emit(SessionEvent("worker", gen.text, {"teacher": teacher.identity.name}))
            try:
                answer = worker.parse_answer(gen)
            except OutputFormatError as err:
                side_rows = self._side_chain(messages, instruction, teacher, None, False, step["cycle"], emit, cancel)
                emit(SessionEvent("failed", f"malformed worker output: {err}", {"reason": str(err)}))
                step["context"] = {
                    "kind": "error",
                    "error": f"The programmer's answer could not be used: {err}. The answer must contain one "
                    "```python block with the whole script.",
                    "failed_script": None,
                }
                self._count_failure(workers, emit)
                self._save(new_rows=side_rows)
                continue
            run = run_script(answer.script, self.config.runner, cancel=cancel)
            side_rows = self._side_chain(messages, instruction, teacher, answer.script, run.ok, step["cycle"], emit, cancel)
            emit(SessionEvent("run", run.log(), {"ok": run.ok, "script": answer.script}))
            output = self._output_record(gen, answer, teacher, step["cycle"])
            if not run.ok:
                rejected = {**output, "kind": "error", "error": run.error_text(), "feedback": None}
                step["context"] = {"kind": "error", "error": run.error_text(), "failed_script": answer.script}
                self._count_failure(workers, emit)
                ids = self._save(new_rows=[self._row(rejected, step["cycle"])] + side_rows)
                emit(SessionEvent("row", f"rejected (error) row {ids[0]}", {"kind": "error"}))
                continue
            blob = self.store.put_logprobs(gen.logprobs()) if gen.has_logprobs else None
            step["proposal"] = {
                **output,
                "step_index": index,
                "step": self.step_text,
                "instruction": instruction,
                "base_script": base_script,
                "messages": messages,
                "logprobs_blob": blob,
                "run": run.as_dict(),
            }
            self.steps[index]["status"] = "review"
            self.state["status"] = "review"
            self._save(new_rows=side_rows)
            proposal = self.pending_proposal()
            assert proposal is not None
            emit(SessionEvent("proposal", proposal.diff(), {"run": run.as_dict(), "cheat": self._cheat(proposal)}))
            return proposal
        self.state["status"] = "stalled"
        step["teacher_index"] = 0
        step["failures"] = 0
        self.steps[index]["status"] = "pending"
        self._save()
        raise AttemptsExhausted(
            f"step {index + 1} failed {budget} times across {len(workers)} worker teacher(s); "
            f"the session is saved, resume it with `shake session --resume {self.id}`, or add a stronger teacher"
        )

    def _cheat(self, proposal: Proposal) -> dict[str, Any]:
        """The cheat guard's finding on a proposal, for the review (see engine/agents/cheat_guard.py)."""
        request = f"{self.state['request']}\n{proposal.step}"
        return cheat_guard.check_proposal(proposal.base_script, proposal.script, request).as_dict()

    def _count_failure(self, workers: list[Teacher], emit: EventSink) -> None:
        step = self.state["step"]
        step["failures"] += 1
        if step["failures"] >= self.config.session.switch_teacher_after and len(workers) > 1:
            step["teacher_index"] = (step["teacher_index"] + 1) % len(workers)
            step["failures"] = 0
            name = workers[step["teacher_index"]].identity.name
            emit(SessionEvent("switch", f"the worker switches to teacher '{name}'", {"teacher": name}))

    def _output_record(self, gen: Generation, answer, teacher: Teacher, cycle: int) -> dict[str, Any]:
        return {
            "text": gen.text,
            "reasoning": answer.reasoning,
            "script": answer.script,
            "teacher": (gen.identity or teacher.identity).as_dict(),
            "sampling": gen.sampling.as_dict() if gen.sampling else {},
            "agent": "worker",
            "cycle": cycle,
            "created_at": now_iso(),
            "constraint": gen.constraint,  # the answer shape the backend enforced, e.g. "worker@1"
            "prompt_version": gen.prompt_version,
        }

    def _row(self, rejected: dict[str, Any] | None, cycle: int) -> dict[str, Any]:
        index = self.state["step_index"]
        return {
            "step_index": index,
            "step": self.step_text,
            "cycle": cycle,
            "prompt": self.state["step"]["prompt"],
            "rejected": rejected,
            "chosen": None,
        }

    # -- feedback -----------------------------------------------------------------------------
    def classify(self, feedback: str, *, cancel: threading.Event | None = None) -> Classification:
        text = analyzer.check_feedback(feedback)
        explicit = analyzer.explicit_label(text)
        if explicit is not None:
            return explicit
        call = self.prompts.analyzer(text, self.step_text if self.steps else "")
        gen = self._ask("analyzer", call, cancel=cancel, side_chain=True)
        teacher = self.pool.get(gen.identity.name) if gen.identity else None
        return analyzer.classify(gen, text, teacher=teacher, call=call, settings=self.config.analyzer,
                                 form=answer_form(teacher))

    def apply_feedback(self, classification: Classification, *, emit: EventSink | None = None) -> None:
        """Store what the label requires (see the module docstring). A failed write leaves both the
        store and this object as they were."""
        try:
            self._apply_feedback(classification, emit=emit)
        except BaseException:
            self._reload()
            raise

    def _apply_feedback(self, classification: Classification, *, emit: EventSink | None = None) -> None:
        emit = emit or (lambda event: None)
        if self.status != "review":
            raise SessionError("there is no proposal waiting for review")
        step = self.state["step"]
        proposal = step["proposal"]
        record = {k: proposal.get(k) for k in ("text", "reasoning", "script", "teacher", "sampling", "agent", "cycle", "created_at",
                                              "constraint", "prompt_version")}
        index = self.state["step_index"]
        label = classification.label
        if label in ("redo", "further_edit"):
            rejected = {**record, "kind": label, "error": None, "feedback": classification.feedback}
            if label == "redo":
                step["context"] = {"kind": "redo", "feedback": classification.feedback, "previous_output": proposal["script"]}
                self._count_failure(self.worker_teachers(), emit)
            else:
                self.state["current_script"] = proposal["script"]
                step["context"] = {"kind": "further_edit", "feedback": classification.feedback}
            step["proposal"] = None
            self.steps[index]["status"] = "running"
            self.state["status"] = "working"
            ids = self._save(new_rows=[self._row(rejected, proposal["cycle"])])
            emit(SessionEvent("row", f"rejected ({label}) row {ids[0]}", {"kind": label}))
            return
        if label != "accepted":
            raise SessionError(f"unknown feedback label {label!r}")
        chosen = {**record, "feedback": classification.feedback, "logprobs": self._chosen_logprobs(proposal, emit)}
        has_rows = any(r["step_index"] == index and r.get("agent", "worker") == "worker" for r in self.store.rows(self.id))
        new_rows = ([] if has_rows else [self._row(None, proposal["cycle"])]) + self._agent_rows
        self.state["current_script"] = proposal["script"]
        self.steps[index]["status"] = "accepted"
        self.state["step_index"] = index + 1
        self.state["step"] = _fresh_step()
        done = self.state["step_index"] >= len(self.steps)
        self.state["status"] = "done" if done else "working"
        self.store.commit(self.id, state=self.state, new_rows=new_rows, chosen_for_step=(index, chosen))
        self._agent_rows = []
        emit(SessionEvent("accepted", f"step {index + 1} accepted", {"step_index": index}))
        if done:
            emit(SessionEvent("done", "every step is accepted", {"script": self.current_script}))

    def _chosen_logprobs(self, proposal: dict[str, Any], emit: EventSink) -> dict[str, Any] | None:
        """Soft labels for the accepted output, conditioned on the step's prompt.

        - With `[student] kd_teacher`, that teacher scores every chosen it did not generate under the
          row's prompt (a switch to another teacher, the student), one teacher-forced pass.
        - Otherwise the generating teacher's own log-probabilities are kept, re-scored under the row's
          prompt when the output came from a later cycle (its instruction differs from the prompt's).
        - A chosen written by a student with no teacher able to score keeps hard labels only: a student
          is not distilled into itself.
        """
        prompt_messages = self.state["step"]["prompt"]["messages"]
        blob = proposal.get("logprobs_blob")
        scored = None
        source, scorer_identity = "generation", proposal["teacher"]
        kd_name = self.config.student.kd_teacher
        generator = proposal["teacher"]["name"]
        scorer_name = None
        if kd_name and generator != kd_name:
            scorer_name = kd_name
        elif proposal["messages"] != prompt_messages:
            scorer_name = generator
        if scorer_name is not None:
            try:
                scorer = self.pool.get(scorer_name)
                if not scorer.can_score:
                    raise ScoringUnsupported(f"teacher '{scorer_name}' cannot score")
                scored = scorer.score(prompt_messages, proposal["text"],
                                      top_logprobs=self.config.teacher(scorer_name).top_logprobs)
                blob = self.store.put_logprobs(scored)
                source = "rescored" if scorer_name == generator else "rescored:kd_teacher"
                scorer_identity = scorer.identity.as_dict()
            except (ScoringUnsupported, TeacherError) as err:
                emit(SessionEvent("note", f"no re-scoring: {err}"))
                if scorer_name == kd_name and proposal["teacher"].get("backend") == "student":
                    blob = None
        if blob and source == "generation" and proposal["teacher"].get("backend") == "student":
            emit(SessionEvent("note", "the student wrote the accepted output and no teacher could score it: hard labels only"))
            blob = None
        if not blob:
            return None
        lp = scored if scored is not None else self.store.get_logprobs(blob)
        return self._logprobs_record(blob, lp, source, scorer_identity)
