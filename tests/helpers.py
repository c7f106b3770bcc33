"""Test helpers: a scripted teacher that answers each agent from a queue, with real-shaped logprobs."""

from __future__ import annotations

import threading

from engine.agents import analyzer, judge, lead, planner, worker
from engine.agents.shapes import SHAPES
from engine.errors import GenerationCancelled
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.base import Generation, ModelIdentity, SamplingParams

AGENT_BY_SYSTEM = {
    planner.SYSTEM: "planner",
    lead.SYSTEM: "lead",
    worker.SYSTEM: "worker",
    analyzer.SYSTEM: "analyzer",
    judge.SYSTEM: "judge",
    judge.TEXT_SYSTEM: "judge",
}


def fake_tokens(text: str, base: float = -0.25) -> list[TokenLogprob]:
    """Split text into 4-byte 'tokens' with two alternatives each (ids are -1, like Ollama)."""
    data = text.encode("utf-8")
    out = []
    for i in range(0, len(data), 4):
        piece = data[i : i + 4]
        out.append(TokenLogprob(-1, piece, base, [TopLogprob(-1, piece, base), TopLogprob(-1, b"?", base - 2.0)]))
    return out


def worker_answer(script: str, reasoning: str = "I change what the instruction asks.") -> str:
    return f"REASONING: {reasoning}\n```python\n{script}```\n"


class ScriptedTeacher:
    """Answers each agent from its own queue; an empty queue repeats a safe default."""

    can_score = True

    def __init__(self, name: str, answers: dict[str, list[str]] | None = None, *, delay_s: float = 0.0,
                 logprobs: bool = True, backend: str = "scripted") -> None:
        self.identity = ModelIdentity(name, backend, f"scripted-{name}")
        self.with_logprobs = logprobs
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.calls: list[tuple[str, list[dict]]] = []
        self.scored: list[tuple[list[dict], str]] = []
        self.delay_s = delay_s
        self.streamed = 0  # tokens handed to `on_token`, over every call
        self.cancelled = 0  # generations stopped by their cancel event

    def agent_of(self, messages) -> str:
        system = messages[0]["content"]
        if system in AGENT_BY_SYSTEM:
            return AGENT_BY_SYSTEM[system]
        # a pinned or edited prompt: its answer format, which comes from the agent's shape, still ends it
        return next((agent for agent, shape in SHAPES.items()
                     if system.endswith(shape.text_format) or system.endswith(shape.json_format)), "unknown")

    def generate(self, messages, sampling: SamplingParams, *, on_token=None, cancel: threading.Event | None = None):
        agent = self.agent_of(messages)
        self.calls.append((agent, messages))
        queue = self.answers.get(agent) or []
        defaults = {"planner": "1. Do the request", "lead": "Do the step.", "analyzer": "EDIT"}
        text = queue.pop(0) if queue else defaults.get(agent, worker_answer("print('default')\n"))
        for tok in fake_tokens(text):
            if cancel is not None and cancel.wait(self.delay_s):
                self.cancelled += 1
                raise GenerationCancelled("generation cancelled")
            if on_token:
                on_token(tok.text)
                self.streamed += 1
        return Generation(text, fake_tokens(text) if self.with_logprobs else [], self.identity, sampling)

    def score(self, messages, response: str, *, top_logprobs: int) -> TokenLogprobs:
        self.scored.append((messages, response))
        return TokenLogprobs.from_tokens(fake_tokens(response, base=-0.5))

    def health(self) -> None:
        pass

    def close(self) -> None:
        pass


def rows_json(store, session_id=None) -> list[dict]:
    """The stored rows as the JSON the store writes (what exports and `data check` see)."""
    return [r.to_json() for r in store.rows(session_id)]
