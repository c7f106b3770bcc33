"""Typed, read-only views of dataset rows for the dataset screen, and its filter.

Why: like `session_view`, this is the one place in the app that knows the row's JSON keys.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RowView:
    row_id: str
    session_id: str
    step_number: int  # 1-based; 0 for a side-chain row written while planning
    cycle: int
    agent: str  # worker, planner, lead, analyzer
    rejected_kind: str  # error, redo, further_edit, student; "" when the row has no rejected
    accepted: bool  # the row has its chosen (trainable)
    teacher: str
    logprob_tokens: int  # tokens with teacher log-probabilities in the chosen; 0 for none
    logprobs_blob: str
    prompt: str  # the last prompt message (the instruction and script)
    chosen: str
    rejected: str
    excluded: bool

    @classmethod
    def of(cls, row: dict[str, Any]) -> RowView:
        chosen, rejected = row.get("chosen") or {}, row.get("rejected") or {}
        lp = chosen.get("logprobs") or {}
        messages = (row.get("prompt") or {}).get("messages") or []
        return cls(
            row_id=row.get("row_id", ""), session_id=row.get("session_id", ""),
            step_number=row.get("step_index", -1) + 1, cycle=row.get("cycle", 0),
            agent=row.get("agent") or "worker", rejected_kind=rejected.get("kind", ""), accepted=bool(chosen),
            teacher=(chosen or rejected).get("teacher", {}).get("name", ""),
            logprob_tokens=lp.get("n_tokens", 0), logprobs_blob=lp.get("blob", "") or "",
            prompt=messages[-1]["content"] if messages else "", chosen=chosen.get("text", ""),
            rejected=rejected.get("text", ""), excluded=bool(row.get("excluded")),
        )


FIELDS = ("session", "agent", "kind", "teacher", "step")


@dataclass(frozen=True)
class RowFilter:
    """`session:ab12 agent:lead kind:redo some words`: every part must match (words: anywhere in
    the prompt, chosen or rejected, case-insensitive). `kind:none` is a row without a rejected."""

    session: str = ""
    agent: str = ""
    kind: str = ""
    teacher: str = ""
    step: str = ""
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, query: str) -> RowFilter:
        try:
            parts = shlex.split(query)
        except ValueError:
            parts = query.split()
        values: dict[str, str] = {}
        words = []
        for part in parts:
            key, sep, value = part.partition(":")
            if sep and key.lower() in FIELDS and value:
                values[key.lower()] = value.lower()
            else:
                words.append(part.lower())
        return cls(**values, words=tuple(words))

    @property
    def empty(self) -> bool:
        return self == RowFilter()

    def matches(self, row: RowView) -> bool:
        if self.session and not row.session_id.lower().startswith(self.session):
            return False
        if self.agent and row.agent != self.agent:
            return False
        if self.kind and (row.rejected_kind or "none") != self.kind:
            return False
        if self.teacher and self.teacher not in row.teacher.lower():
            return False
        if self.step and str(row.step_number) != self.step:
            return False
        haystack = f"{row.prompt}\n{row.chosen}\n{row.rejected}".lower()
        return all(word in haystack for word in self.words)
