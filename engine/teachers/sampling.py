"""Sampling and log-probability helpers shared by the in-process backends (llama.cpp and the student).

The recorded distribution is always the model's own (temperature 1): that is what distillation
needs. Sampling applies temperature, top-k and top-p on top of it, with a seeded generator.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.logprobs import TopLogprob
from engine.teachers.base import SamplingParams


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def top_k(logprobs: np.ndarray, k: int, token_bytes: Callable[[int], bytes]) -> list[TopLogprob]:
    if k <= 0:
        return []
    idx = np.argpartition(-logprobs, k)[:k]
    idx = idx[np.argsort(-logprobs[idx])]
    return [TopLogprob(int(i), token_bytes(int(i)), float(logprobs[i])) for i in idx]


def sample(logits: np.ndarray, sampling: SamplingParams, rng: np.random.Generator) -> int:
    if sampling.temperature <= 0:
        return int(np.argmax(logits))
    k = min(max(sampling.top_k, 1), logits.shape[0] - 1)
    cand = np.argpartition(-logits, k)[:k]
    cand = cand[np.argsort(-logits[cand])]
    scaled = logits[cand].astype(np.float64) / sampling.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if sampling.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), sampling.top_p) + 1)
        probs = probs[:keep] / probs[:keep].sum()
        cand = cand[:keep]
    return int(cand[rng.choice(len(cand), p=probs)])
