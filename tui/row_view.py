"""Dataset rows shaped for the dataset screen, and its filter.

Why: like `session_view`, this is the one place in the app that reads the store's `Row` records.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from engine.store.schema import Origin, Row


@dataclass(frozen=True)
class RowView:
    row_id: str
    session_id: str
    step_number: int  # 1-based; 0 for a planner row written before any step existed
    cycle: int
    agent: str  # worker, planner, lead, analyzer
    rejected_kind: str  # error, redo, further_edit, student; "" when the row has no rejected
    accepted: bool  # the row has its chosen (trainable unless excluded)
    teacher: str  # who wrote the chosen (or the rejected): a teacher's name, or "you" for a user edit
    logprob_tokens: int  # tokens with teacher log-probabilities in the chosen; 0 for none
    logprobs_blob: str
    prompt: str  # the last prompt message (the instruction and script)
    chosen: str
    rejected: str
    excluded: str  # the reason it is left out of training and export; "" when it is in

    @classmethod
    def of(cls, row: Row) -> RowView:
        chosen, rejected = row.chosen, row.rejected
        out = chosen or rejected
        if out is not None and out.origin == Origin.USER_EDIT:
            teacher = "you"
        else:
            teacher = out.teacher.name if out is not None and out.teacher is not None else ""
        return cls(
            row_id=row.row_id, session_id=row.session_id, step_number=row.step_index + 1, cycle=row.cycle,
            agent=row.agent.value, rejected_kind=rejected.kind.value if rejected else "", accepted=chosen is not None,
            teacher=teacher, logprob_tokens=chosen.logprobs.n_tokens if chosen and chosen.logprobs else 0,
            logprobs_blob=chosen.logprobs.blob if chosen and chosen.logprobs else "",
            prompt=row.prompt.messages[-1].content if row.prompt.messages else "",
            chosen=chosen.text if chosen else "", rejected=rejected.text if rejected else "",
            excluded=(row.excluded.reason or "excluded") if row.excluded else "",
        )


FIELDS = ("session", "agent", "kind", "teacher", "step", "excluded")


@dataclass(frozen=True)
class RowFilter:
    """`session:ab12 agent:lead kind:redo some words`: every part must match (words: anywhere in
    the prompt, chosen or rejected, case-insensitive). `kind:none` is a row without a rejected;
    `excluded:yes` / `excluded:no` the rows left out of training, or kept in."""

    session: str = ""
    agent: str = ""
    kind: str = ""
    teacher: str = ""
    step: str = ""
    excluded: str = ""
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
        if self.excluded and (self.excluded in ("yes", "y", "true", "1")) != bool(row.excluded):
            return False
        haystack = f"{row.prompt}\n{row.chosen}\n{row.rejected}".lower()
        return all(word in haystack for word in self.words)
