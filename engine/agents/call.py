"""An agent's sampling settings as the parameters a teacher takes."""

from __future__ import annotations

from engine.config import SamplingConfig
from engine.teachers.base import SamplingParams


def sampling_for(config: SamplingConfig, *, seed: int, top_logprobs: int) -> SamplingParams:
    return SamplingParams(
        temperature=config.temperature, max_tokens=config.max_tokens, seed=seed, top_logprobs=top_logprobs
    )
