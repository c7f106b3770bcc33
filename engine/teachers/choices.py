"""Teacher-forced log-probabilities of a few fixed answers after the same prefix (the analyzer's labels).

A teacher with its own `score_choices` (the embedded backend: one pass over the prompt, then a few
tokens per choice from the cache) is asked directly; any other teacher that can score is asked to
score `prefix + choice` whole, and the choice's part is the tokens from the first one that holds a
byte of the choice.
"""

from __future__ import annotations

from engine.errors import ScoringUnsupported
from engine.teachers.base import Message


def choice_logprobs(teacher: object, messages: list[Message], prefix: str, choices: list[str]) -> list[float]:
    if not getattr(teacher, "can_score", False):
        raise ScoringUnsupported(f"teacher '{teacher.identity.name}' cannot score")  # type: ignore[attr-defined]
    own = getattr(teacher, "score_choices", None)
    if own is not None:
        return own(messages, prefix, choices)
    start = len(prefix.encode("utf-8"))
    totals = []
    for choice in choices:
        scored = teacher.score(messages, prefix + choice, top_logprobs=0)  # type: ignore[attr-defined]
        offset, total = 0, 0.0
        for token_bytes, logprob in zip(scored.token_bytes, scored.logprobs):
            offset += len(token_bytes)
            if offset > start:
                total += float(logprob)
        totals.append(total)
    return totals
