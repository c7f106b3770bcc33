"""One agent call on one teacher: sampling settings, the prompt in the teacher's answer form, the constraint."""

from __future__ import annotations

import threading

from engine.config import SamplingConfig
from engine.prompts.book import PromptCall
from engine.teachers.base import Generation, SamplingParams, Teacher, TokenCallback, answer_form


def sampling_for(config: SamplingConfig, *, seed: int, top_logprobs: int) -> SamplingParams:
    return SamplingParams(
        temperature=config.temperature, max_tokens=config.max_tokens, seed=seed, top_logprobs=top_logprobs
    )


def generate(teacher: Teacher, call: PromptCall, sampling: SamplingParams, *, on_token: TokenCallback | None = None,
             cancel: threading.Event | None = None) -> Generation:
    """The teacher answers `call` in its own form, held to the agent's shape where it can be.

    The generation records the prompt version; the backend records the constraint it enforced.
    """
    form = answer_form(teacher)
    messages = call.messages(form)
    if form == "off":
        gen = teacher.generate(messages, sampling, on_token=on_token, cancel=cancel)
    else:
        gen = teacher.generate(messages, sampling, on_token=on_token, cancel=cancel,  # type: ignore[call-arg]
                               constraint=call.constraint())
    gen.prompt_version = call.version
    return gen
