"""One agent call: messages in, a `Generation` out, with the agent's sampling settings applied."""

from __future__ import annotations

import threading

from engine.config import SamplingConfig
from engine.teachers.base import Generation, Message, SamplingParams, Teacher, TokenCallback


def sampling_for(config: SamplingConfig, *, seed: int, top_logprobs: int) -> SamplingParams:
    return SamplingParams(
        temperature=config.temperature, max_tokens=config.max_tokens, seed=seed, top_logprobs=top_logprobs
    )


def call_agent(
    teacher: Teacher,
    messages: list[Message],
    sampling: SamplingParams,
    *,
    on_token: TokenCallback | None = None,
    cancel: threading.Event | None = None,
) -> Generation:
    return teacher.generate(messages, sampling, on_token=on_token, cancel=cancel)
