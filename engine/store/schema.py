"""The dataset's rows and the session state, as typed records: the one definition of the on-disk format.

Every session file (`DATA/sessions/<id>.json`) holds three tables::

    meta:  {"1": {"schema": 2}}
    state: {"1": SessionState}
    rows:  {"1": Row, "2": Row, ...}

Rows follow the paper's rules (shared/README.md §1). A **worker row** (`agent = "worker"`) belongs to a
project step: its `prompt` is the worker's input in the step's first cycle, its `rejected` one failed
or refused output of that step (kind `error`, `redo`, `further_edit`, or `student` for a side-chain
student's worse answer), its `chosen` the step's accepted output, the same in every worker row of the
step, or none while the step is open. A step accepted with no teacher rejection has one worker row with
an empty `rejected`. **Agent rows** (`planner`, `lead`, `analyzer`) come from the side-chain: the prompt
is that agent's messages, the chosen the answer the engine used (for the analyzer: the label the user
confirmed), the rejected a student's different answer; they never take a worker's chosen.

A chosen's soft labels (`Chosen.logprobs`) say which teacher computed them (`scorer`), how
(`source`: from the generation itself or a teacher-forced re-scoring) and under which prompt
(`prompt_sha`, the SHA-256 of the messages they were computed under). They are conditioned on the row's
prompt exactly when `prompt_sha == row.prompt.sha`; the trainer uses KD only on those unless told
otherwise. Where the chosen came from a later cycle, `Chosen.context_logprobs` also keeps the generator's
own labels under the richer context that produced it (context distillation). `shake data check` refuses
a student scoring a student's output. The token bytes of both records are always exactly the chosen's
`text`, and a record's reasoning (`thinking_blob`) exactly the chosen's `thinking` (checked when the row
is written); spans a server's entries could not be trusted for carry no alternatives, and
`shake data stats`/`check` report the share of chosen bytes that carry soft labels.

Reading checks every field (`codec.decode`); version 1 files (before typed records) are upgraded in
memory when read and written back as version 2 on the next write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Iterable

from engine.store.codec import SchemaError, decode, encode
from engine.execution.project import Bounds, RunSpec
from engine.execution.runner import RunResult
from engine.prompts.repo_map import ModuleRef
from engine.teachers.base import ModelIdentity, SamplingParams

SCHEMA_VERSION = 2
KNOWN_SCHEMAS = (1, 2)


class Agent(StrEnum):
    PLANNER = "planner"
    LEAD = "lead"
    WORKER = "worker"
    ANALYZER = "analyzer"


class RejectedKind(StrEnum):
    ERROR = "error"  # the script failed when run
    REDO = "redo"  # the user asked for the change again from the unchanged script
    FURTHER_EDIT = "further_edit"  # the user asked for more on top of this output
    STUDENT = "student"  # a side-chain student's answer, worse than the teacher's


class LogprobSource(StrEnum):
    GENERATION = "generation"  # recorded while the scorer generated this very text
    RESCORED = "rescored"  # one teacher-forced pass of the scorer over the text


class Origin(StrEnum):
    MODEL = "model"  # a teacher or student wrote it
    USER_EDIT = "user_edit"  # the user's own edit of a proposal, accepted
    USER_LABEL = "user_label"  # the analyzer label the user chose where the teacher said another


class SessionStatus(StrEnum):
    PLANNING = "planning"
    WORKING = "working"
    REVIEW = "review"
    STALLED = "stalled"
    DONE = "done"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    REVIEW = "review"
    STALLED = "stalled"
    ACCEPTED = "accepted"
    SKIPPED = "skipped"


class ContextKind(StrEnum):
    NONE = "none"
    ERROR = "error"
    REDO = "redo"
    FURTHER_EDIT = "further_edit"


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(encode(value), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# -- rows -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


def chat(messages: Iterable[ChatMessage]) -> list[dict[str, str]]:
    """The messages as teachers take them."""
    return [{"role": m.role, "content": m.content} for m in messages]


def messages_of(chat_messages: Iterable[dict[str, str]]) -> tuple[ChatMessage, ...]:
    return tuple(decode(ChatMessage, m, f"messages[{i}]") for i, m in enumerate(chat_messages))


def messages_sha(messages: Iterable[ChatMessage]) -> str:
    return _sha(list(messages))


@dataclass(frozen=True)
class GivenContext:
    """The project context a prompt's messages carried (project mode), so that a row can be rebuilt:
    the project, how the script ran, the modules whose signatures the repo map gave (with their
    files' hashes) and a digest of every file the run exposed when the prompt was made."""

    root: str
    script: str  # the script's path inside the project
    run: tuple[str, ...]
    check: tuple[str, ...]
    modules: tuple[ModuleRef, ...]
    left_out: tuple[str, ...]  # modules the map's bound left out
    files_sha: str  # engine.execution.project.files_digest


@dataclass(frozen=True)
class Prompt:
    messages: tuple[ChatMessage, ...]
    instruction: str = ""  # the lead's instruction (worker rows)
    script: str = ""  # the script the worker was given (worker rows)
    context: GivenContext | None = None  # project mode: what project context the messages carried

    @property
    def sha(self) -> str:
        return messages_sha(self.messages)

    def chat(self) -> list[dict[str, str]]:
        return chat(self.messages)


@dataclass(frozen=True)
class LogprobRecord:
    blob: str  # sha256 of the .npz under DATA/blobs/
    n_tokens: int
    k: int
    has_ids: bool
    source: LogprobSource
    scorer: ModelIdentity
    prompt_sha: str | None  # the messages they were computed under; None: unknown (schema 1 data)
    constraint: str = ""  # the grammar the generation ran under ("" = none); see engine/agents
    # A thinking model's reasoning has its own soft labels, split from the answer's where the server sent
    # them (engine/teachers/entries.py `Transcript`): a second blob whose token bytes are exactly the
    # chosen's `thinking` ("" = none). The trainer trains on `text`; this keeps what the teacher said.
    thinking_blob: str = ""
    thinking_tokens: int = 0


@dataclass(frozen=True, kw_only=True)
class Output:
    """An answer as it was produced (by a model, or by the user for an edit), with its provenance."""

    text: str
    reasoning: str = ""
    thinking: str = ""  # a thinking model's reasoning before `text` (never in `text`, never in its soft labels)
    script: str = ""
    agent: Agent = Agent.WORKER
    teacher: ModelIdentity | None  # None where the user wrote it
    sampling: SamplingParams | None = None
    cycle: int
    created_at: str
    origin: Origin = Origin.MODEL
    prompt_version: str = ""  # hash of the agent's prompt template
    constraint: str = ""  # the grammar the answer was constrained by, with its version ("" = none)


@dataclass(frozen=True, kw_only=True)
class Rejected(Output):
    kind: RejectedKind
    error: str | None = None  # run error, malformed reason, or why the student's answer is worse
    feedback: str | None = None  # the user's words for redo / further_edit
    student_version: str | None = None


@dataclass(frozen=True, kw_only=True)
class Chosen(Output):
    feedback: str | None = None
    logprobs: LogprobRecord | None = None
    # The generating teacher's own log-probabilities under the messages of the cycle that produced this
    # chosen, kept where those were not the row's prompt (a later cycle, with the error or the feedback):
    # the soft labels of context distillation (`shake train --soft-labels context`). None where they
    # would be `logprobs` again, where the generator is a student, or where it gave none.
    context_logprobs: LogprobRecord | None = None
    # Why the soft labels offered with this chosen were not kept ("" = none were refused): the store
    # refuses a record whose token bytes are not the chosen's text (`DatasetStore.commit`).
    soft_labels_refused: str = ""


@dataclass(frozen=True)
class Exclusion:
    reason: str
    at: str


@dataclass(frozen=True, kw_only=True)
class Row:
    row_id: str = ""  # filled by the store
    session_id: str = ""  # filled by the store
    agent: Agent = Agent.WORKER
    step_index: int  # -1 for the planner's rows (before any step exists)
    step: str
    cycle: int
    prompt: Prompt
    rejected: Rejected | None = None
    chosen: Chosen | None = None
    created_at: str = ""
    updated_at: str = ""
    excluded: Exclusion | None = None

    @property
    def is_worker(self) -> bool:
        return self.agent == Agent.WORKER

    @property
    def trainable(self) -> bool:
        return self.chosen is not None and self.excluded is None

    @property
    def soft_labels_match_prompt(self) -> bool:
        lp = self.chosen.logprobs if self.chosen else None
        return bool(lp and lp.prompt_sha == self.prompt.sha)

    def to_json(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "row") -> Row:
        return decode(cls, data, where)


def worker_rows_of_step(rows: Iterable[Row], step_index: int, wording: str | None) -> list[Row]:
    """The worker rows of one step: the rows that share the step's prompt and its chosen. Every
    consumer (the session, rescore, export, the trainer, `data check`) asks this one question.

    `wording` is the step's text as it now stands (`step_wording`): a step reworded with `E` starts a
    new prompt, and the rows written under the old wording (`Row.step` says which) answer another
    instruction, so they are not the step's rows: they never get the chosen that answers the new
    wording (they stay without one, never trained on, as a skipped step's rows). None: the step is not
    in the plan (a damaged state), every row of the index is taken."""
    return [r for r in rows if r.is_worker and r.step_index == step_index and (wording is None or r.step == wording)]


def step_wording(state: SessionState, step_index: int) -> str | None:
    """The step's text as it now stands, for `worker_rows_of_step`; None when the plan has no such step."""
    return state.steps[step_index].text if 0 <= step_index < len(state.steps) else None


def distinct_chosens(rows: Iterable[Row]) -> list[Chosen]:
    """Each chosen once: a step's worker rows share theirs, an agent row has its own."""
    seen: set[tuple[str, int]] = set()
    out = []
    for row in rows:
        if row.chosen is None:
            continue
        if row.is_worker:
            if (row.session_id, row.step_index) in seen:
                continue
            seen.add((row.session_id, row.step_index))
        out.append(row.chosen)
    return out


# -- session state ----------------------------------------------------------------------------------
@dataclass
class PlanStep:
    text: str
    status: StepStatus = StepStatus.PENDING
    cycles: int = 0


@dataclass
class StepContext:
    """What the lead is told in the next cycle."""

    kind: ContextKind = ContextKind.NONE
    error: str | None = None
    failed_script: str | None = None  # the script that failed; the fix cycle starts from it
    feedback: str | None = None
    previous_output: str | None = None


@dataclass
class PendingProposal:
    """A worker output that ran and waits for the user's review."""

    output: Output
    step_index: int
    step: str
    instruction: str
    base_script: str
    messages: tuple[ChatMessage, ...]  # what the worker was given in this cycle
    logprobs: LogprobRecord | None  # recorded while generating, under `messages`
    run: RunResult
    warnings: list[str] = field(default_factory=list)  # what the review should point out


@dataclass
class StallInfo:
    attempts: int
    reason: str  # the last failure
    teachers: list[str]


@dataclass
class StepState:
    prompt: Prompt | None = None
    cycle: int = 0
    teacher_index: int = 0
    failures: int = 0
    context: StepContext = field(default_factory=StepContext)
    proposal: PendingProposal | None = None
    stall: StallInfo | None = None
    last_script: str | None = None  # the last proposal shown in this step: a teacher that repeats it is said so


@dataclass
class SessionState:
    script_path: str
    request: str
    original_script: str
    current_script: str
    status: SessionStatus = SessionStatus.PLANNING
    steps: list[PlanStep] = field(default_factory=list)
    step_index: int = 0
    step: StepState = field(default_factory=StepState)
    project: RunSpec | None = None  # project mode: where and how the scripts run (engine/execution/project.py)
    session_id: str = ""
    created_at: str = ""
    updated_at: str = ""

    def copy(self) -> SessionState:
        return decode(SessionState, encode(self))

    @property
    def current_step(self) -> PlanStep | None:
        return self.steps[self.step_index] if 0 <= self.step_index < len(self.steps) else None

    @property
    def done_steps(self) -> int:
        """The steps that are done: accepted ones. A skipped step is not done (it stays undone and its rows
        are never trained on); the one count the app and `shake sessions` both show."""
        return sum(1 for s in self.steps if s.status == StepStatus.ACCEPTED)

    @property
    def skipped_steps(self) -> int:
        return sum(1 for s in self.steps if s.status == StepStatus.SKIPPED)


# -- files ------------------------------------------------------------------------------------------
@dataclass
class SessionFile:
    """One session file, read and checked."""

    schema: int
    state: SessionState
    rows: dict[str, Row]  # by the file's sequential key


def parse_session_file(data: Any, name: str) -> SessionFile:
    """Check a session file's JSON; upgrade version 1 in memory. Raises `SchemaError`."""
    if not isinstance(data, dict):
        raise SchemaError(f"{name}: a session file holds an object with the tables meta, state and rows, "
                          f"not {type(data).__name__}")
    unknown = sorted(set(data) - {"meta", "state", "rows"})
    if unknown:
        raise SchemaError(f"{name}: unknown table(s) {', '.join(unknown)}")
    meta = (data.get("meta") or {}).get("1") or {}
    schema = meta.get("schema", 1) if isinstance(meta, dict) else None
    if schema not in KNOWN_SCHEMAS:
        raise SchemaError(f"{name}: schema version {schema!r} is not one this shake knows "
                          f"({', '.join(map(str, KNOWN_SCHEMAS))}); a newer shake wrote it")
    state_table = data.get("state")
    if not isinstance(state_table, dict) or not isinstance(state_table.get("1"), dict):
        raise SchemaError(f"{name}: no session state (table 'state' has no document)")
    rows_table = data.get("rows", {})
    if not isinstance(rows_table, dict):
        raise SchemaError(f"{name}: table 'rows' is {type(rows_table).__name__}, not an object")
    raw_state = state_table["1"]
    if schema == 1:
        raw_state = _upgrade_state_v1(raw_state)
    state = decode(SessionState, raw_state, f"{name}: state")
    rows = {}
    for key in sorted(rows_table, key=lambda k: (len(k), k)):
        raw = rows_table[key]
        if schema == 1 and isinstance(raw, dict):
            raw = _upgrade_row_v1(raw)
        rows[key] = decode(Row, raw, f"{name}: row {key}")
    return SessionFile(schema, state, rows)


def session_file_json(state: SessionState, rows: dict[str, Row]) -> dict[str, Any]:
    return {"meta": {"1": {"schema": SCHEMA_VERSION}}, "state": {"1": encode(state)},
            "rows": {k: encode(r) for k, r in rows.items()}}


# -- version 1 (untyped dicts) ----------------------------------------------------------------------
_OUTPUT_KEYS = ("text", "reasoning", "script", "teacher", "sampling", "agent", "cycle", "created_at")


def _upgrade_output_v1(out: dict, agent: str) -> dict:
    new = {k: out[k] for k in _OUTPUT_KEYS if k in out}
    new.setdefault("agent", agent)
    new.setdefault("cycle", 0)
    new.setdefault("created_at", "")
    new.setdefault("teacher", None)
    if new.get("sampling") == {}:
        new["sampling"] = None
    return new


def _upgrade_row_v1(row: dict) -> dict:
    """Version 1 rows: `agent` absent for the worker, `logprobs.teacher` for the scorer, source
    `rescored:kd_teacher`, and no record of the prompt the log-probabilities were computed under (a
    re-scoring was always under the row's prompt; a generation's prompt is unknown)."""
    row = dict(row)
    agent = row.get("agent") or "worker"
    row["agent"] = agent
    prompt = row.get("prompt")
    if isinstance(prompt, dict):
        row["prompt"] = {k: prompt[k] for k in ("messages", "instruction", "script") if k in prompt}
    rejected = row.get("rejected")
    if isinstance(rejected, dict):
        new = _upgrade_output_v1(rejected, agent)
        new.update({k: rejected[k] for k in ("kind", "error", "feedback", "student_version") if k in rejected})
        row["rejected"] = new
    chosen = row.get("chosen")
    if isinstance(chosen, dict):
        new = _upgrade_output_v1(chosen, agent)
        new["feedback"] = chosen.get("feedback")
        lp = chosen.get("logprobs")
        if isinstance(lp, dict):
            source = str(lp.get("source", "generation"))
            rescored = source.startswith("rescored")
            prompt_sha = None
            if rescored and isinstance(prompt, dict):
                try:
                    prompt_sha = messages_sha(messages_of(prompt.get("messages") or []))
                except SchemaError:
                    prompt_sha = None
            lp = {"blob": lp.get("blob"), "n_tokens": lp.get("n_tokens"), "k": lp.get("k"),
                  "has_ids": lp.get("has_ids"), "source": "rescored" if rescored else "generation",
                  "scorer": lp.get("teacher") or chosen.get("teacher"), "prompt_sha": prompt_sha}
        new["logprobs"] = lp
        row["chosen"] = new
    return row


def _upgrade_state_v1(state: dict) -> dict:
    state = dict(state)
    step = state.get("step")
    if isinstance(step, dict):
        step = dict(step)
        proposal = step.get("proposal")
        if isinstance(proposal, dict):
            output = _upgrade_output_v1(proposal, "worker")
            step["proposal"] = {
                "output": output, "step_index": proposal.get("step_index"), "step": proposal.get("step"),
                "instruction": proposal.get("instruction"), "base_script": proposal.get("base_script"),
                # a version 1 proposal kept only its blob's name; its soft labels are dropped (the
                # accept re-scores where a teacher can)
                "messages": proposal.get("messages"), "logprobs": None, "run": proposal.get("run"),
            }
        state["step"] = step
    return state


def with_chosen(row: Row, chosen: Chosen | None, stamp: str) -> Row:
    return replace(row, chosen=chosen, updated_at=stamp)


def _type_name(tp: Any) -> str:
    import types
    import typing

    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def schema_markdown() -> str:
    """The records and their fields, as README shows them (a test keeps README equal to this)."""
    import typing

    records = (Row, Prompt, GivenContext, ModuleRef, ChatMessage, Rejected, Chosen, LogprobRecord, ModelIdentity,
               SamplingParams, Exclusion, SessionState, RunSpec, Bounds, PlanStep, StepState, StepContext,
               PendingProposal, StallInfo)
    lines = [f"Schema version {SCHEMA_VERSION}. Records (`engine/store/schema.py`), each field with its type:", ""]
    for record in records:
        hints = typing.get_type_hints(record)
        parts = [f"`{f.name}` {_type_name(hints[f.name])}" for f in fields(record)]
        lines.append(f"- **{record.__name__}**: " + ", ".join(parts))
    lines += ["", "Values:", ""]
    enums = (Agent, RejectedKind, LogprobSource, Origin, SessionStatus, StepStatus, ContextKind)
    lines += [f"- **{e.__name__}**: " + " | ".join(f"`{m.value}`" for m in e) for e in enums]
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m engine.store.schema` prints README's schema block
    print(schema_markdown())
