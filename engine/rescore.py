"""`shake data rescore`: soft labels from the KD teacher for every chosen it did not score itself.

For each accepted step, the teacher scores the chosen text under the step's prompt (one
teacher-forced pass) and the result goes into every row of the step. It is resumable: a step whose
chosen already carries this teacher's log-probabilities is skipped, and each session is committed as
soon as its steps are done, so an interrupted run loses at most one session's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.errors import ScoringUnsupported
from engine.store import DatasetStore
from engine.teachers.base import Teacher


@dataclass
class RescoreReport:
    scored_steps: int = 0
    skipped_steps: int = 0
    rows_updated: int = 0


def rescore(store: DatasetStore, teacher: Teacher, *, top_logprobs: int,
            progress: Callable[[str], None] = lambda m: None) -> RescoreReport:
    if not teacher.can_score:
        raise ScoringUnsupported(f"teacher '{teacher.identity.name}' ({teacher.identity.backend}) cannot score a given "
                                 "text; name an embedded or student teacher")
    report = RescoreReport()
    name = teacher.identity.name
    for session_id in store.session_ids():
        steps: dict[int, dict] = {}
        for row in store.rows(session_id):
            if row.get("chosen"):
                steps.setdefault(row["step_index"], row)
        for step_index, row in sorted(steps.items()):
            chosen = row["chosen"]
            lp = chosen.get("logprobs") or {}
            if (lp.get("teacher") or {}).get("name") == name:
                report.skipped_steps += 1
                continue
            scored = teacher.score(row["prompt"]["messages"], chosen["text"], top_logprobs=top_logprobs)
            blob = store.put_logprobs(scored)
            new_chosen = {**chosen, "logprobs": {"blob": blob, "n_tokens": len(scored), "k": scored.k,
                                                 "has_ids": scored.has_ids, "source": "rescored:kd_teacher",
                                                 "teacher": teacher.identity.as_dict()}}
            store.commit(session_id, chosen_for_step=(step_index, new_chosen))
            report.scored_steps += 1
            report.rows_updated += sum(1 for r in store.rows(session_id) if r["step_index"] == step_index)
            progress(f"{session_id} step {step_index + 1}: {len(scored)} tokens scored")
    return report
