"""Typed rows and states for store-level tests (the engine writes them through the session)."""

from __future__ import annotations

from engine.store.schema import (
    Agent,
    ChatMessage,
    Chosen,
    LogprobRecord,
    LogprobSource,
    Prompt,
    Rejected,
    RejectedKind,
    Row,
    SessionState,
)
from engine.teachers.base import ModelIdentity

TEACHER = ModelIdentity("a", "embedded", "model.gguf")
PROMPT = Prompt((ChatMessage("user", "p"),), "i", "x")


def state(**kw) -> SessionState:
    return SessionState(**{"script_path": "/s.py", "request": "r", "original_script": "x", "current_script": "x", **kw})


def rejected(kind: str = "error", text: str = "bad", agent: Agent = Agent.WORKER) -> Rejected:
    return Rejected(text=text, reasoning="r", script="y", agent=agent, teacher=TEACHER, cycle=1, created_at="t",
                    kind=RejectedKind(kind), student_version="s1" if kind == "student" else None)


def lp_record(blob: str, n_tokens: int, k: int = 2, *, prompt: Prompt = PROMPT, scorer: ModelIdentity = TEACHER,
              source: LogprobSource = LogprobSource.GENERATION) -> LogprobRecord:
    return LogprobRecord(blob=blob, n_tokens=n_tokens, k=k, has_ids=False, source=source, scorer=scorer,
                         prompt_sha=prompt.sha)


def chosen(text: str = "good", logprobs: LogprobRecord | None = None, agent: Agent = Agent.WORKER) -> Chosen:
    return Chosen(text=text, script=text, agent=agent, teacher=TEACHER, cycle=1, created_at="t", logprobs=logprobs)


def row(step: int = 0, kind: str | None = "error", chosen_: Chosen | None = None, *, agent: Agent = Agent.WORKER,
        prompt: Prompt = PROMPT, text: str = "bad") -> Row:
    return Row(agent=agent, step_index=step, step="s", cycle=1, prompt=prompt,
               rejected=rejected(kind, text, agent) if kind else None, chosen=chosen_)


def store_generation(store, gen, teacher) -> Row:
    """Write a teacher's generation as a session writes a chosen (its text, thinking and both soft-label
    records, under PROMPT) in a new session of `store`, and read the row back as stored."""
    from engine.session.calls import logprob_record, output_record
    from engine.store.schema import Agent

    out = output_record(gen, teacher, Agent.WORKER, 1)
    lp = gen.logprobs()
    record = None if lp is None else logprob_record(store, lp, source=LogprobSource.GENERATION,
                                                    scorer=teacher.identity, prompt_sha=PROMPT.sha,
                                                    thinking=gen.thinking_logprobs())
    sid = store.create_session(state())
    store.commit(sid, new_rows=[row(0, None, Chosen(**out.__dict__, logprobs=record))])
    (stored,) = store.rows(sid)
    return stored
