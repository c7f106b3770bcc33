"""Agent calls: an agent's teachers in order, the next one taking over when one cannot be reached.

Each call is a `PromptCall` from the session's prompt book (`self.prompts`: the built-in prompts or
the versions `[prompts]` pins); each teacher gets it in its own answer form, held to the agent's
shape where the backend can (`engine.agents.call.generate`).

Also builds the typed records of what came back (`output_record`, `logprob_record`), so that every
row's provenance is written in one place.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from engine.agents.call import generate, sampling_for
from engine.config import Config
from engine.errors import TeacherError, TeacherUnavailable
from engine.logprobs import TokenLogprobs
from engine.prompts import PromptCall, load_prompt_book
from engine.session.events import EventKind, EventSink, SessionEvent, ignore
from engine.store.schema import Agent, LogprobRecord, LogprobSource, Output
from engine.store.store import DatasetStore, now_iso
from engine.teachers.base import Generation, Message, ModelIdentity, Teacher, TokenCallback, answer_form
from engine.teachers.pool import TeacherPool


DRAW_STRIDE = 100_003  # a prime: draw d of cycle c never meets draw d' of cycle c' for any c, d < 100k


def draw_seed(seed: int, cycle: int, draw: int) -> int:
    """The sampling seed of one draw of one cycle; draw 0 keeps the seed a cycle always had."""
    return (seed + cycle + draw * DRAW_STRIDE) % (2**31)


class AgentCalls:
    def __init__(self, pool: TeacherPool, config: Config) -> None:
        self.pool = pool
        self.config = config
        self.prompts = load_prompt_book(config)

    def ask(
        self,
        agent: str,
        call: PromptCall,
        *,
        cycle: int,
        teachers: list[Teacher] | None = None,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        emit: EventSink = ignore,
        top_logprobs: bool = True,
        draw: int = 0,
        temperature: float | None = None,
    ) -> tuple[Generation, Teacher]:
        """The first teacher that answers; `TeacherUnavailable` hands over to the next, any other
        teacher error stops the call. Each cycle samples with its own seed, and each `draw` of a cycle
        (the worker's candidates, a lead asked again) with its own. `agent` names the sampling settings
        and the teachers (the judge runs as the worker); `temperature` replaces the agent's."""
        teachers = teachers if teachers is not None else self.pool.for_agent(agent)
        last: TeacherError | None = None
        for teacher in teachers:
            tcfg = self.config.teacher(teacher.identity.name)
            sampling = sampling_for(self.config.sampling[agent], seed=draw_seed(tcfg.seed, cycle, draw),
                                    top_logprobs=tcfg.top_logprobs if top_logprobs else 0)
            if temperature is not None:
                sampling = replace(sampling, temperature=temperature)
            try:
                return generate(teacher, call, sampling, on_token=on_token, cancel=cancel), teacher
            except TeacherUnavailable as err:
                last = err
                emit(SessionEvent(EventKind.NOTE, f"{agent}: {err}; trying the next teacher"))
        if last is None:
            raise TeacherUnavailable(f"the {agent} has no teachers configured")
        raise last


def messages_for(call: PromptCall, teacher: Teacher) -> list[Message]:
    """The messages `teacher` was given for `call` (they depend on its answer form)."""
    return call.messages(answer_form(teacher))


def identity_of(gen: Generation, teacher: Teacher) -> ModelIdentity:
    return gen.identity or teacher.identity


def output_record(gen: Generation, teacher: Teacher, agent: Agent, cycle: int, *, reasoning: str = "",
                  script: str = "") -> Output:
    return Output(text=gen.text, reasoning=reasoning, thinking=gen.thinking, script=script, agent=agent, teacher=identity_of(gen, teacher),
                  sampling=gen.sampling, cycle=cycle, created_at=now_iso(),
                  prompt_version=gen.prompt_version or "", constraint=gen.constraint or "")


def logprob_record(store: DatasetStore, lp: TokenLogprobs, *, source: LogprobSource, scorer: ModelIdentity,
                   prompt_sha: str, constraint: str = "", blob: str | None = None,
                   thinking: TokenLogprobs | None = None) -> LogprobRecord:
    """Store the arrays (unless `blob` already names them) and describe them; `thinking`: the reasoning's
    own soft labels (`Generation.thinking_logprobs`), stored beside the answer's."""
    blob = blob or store.put_logprobs(lp)
    return LogprobRecord(blob=blob, n_tokens=len(lp), k=lp.k, has_ids=lp.has_ids, source=source, scorer=scorer,
                         prompt_sha=prompt_sha, constraint=constraint,
                         thinking_blob=store.put_logprobs(thinking) if thinking is not None else "",
                         thinking_tokens=len(thinking) if thinking is not None else 0)
