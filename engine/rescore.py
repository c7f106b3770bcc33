"""`shake data rescore`: soft labels from a scoring teacher for every accepted step it did not label.

For each accepted step, the teacher scores the step's chosen text under the step's prompt (one
teacher-forced pass, `session.soft_labels.score`) and the result goes into every worker row of the step
(`DatasetStore.worker_rows`, the same query the session uses; agent rows keep their own chosen). A
student never scores (it would be distilled into itself). It is resumable: a step whose chosen already
carries this teacher's log-probabilities under the step's prompt is skipped, and each step is committed
as soon as it is scored, so an interrupted run loses at most one step's work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from engine.errors import ScoringUnsupported
from engine.session.soft_labels import STUDENT_BACKEND, score
from engine.store import DatasetStore
from engine.teachers.base import Teacher


@dataclass
class RescoreReport:
    scored_steps: int = 0
    skipped_steps: int = 0
    rows_updated: int = 0


def rescore(store: DatasetStore, teacher: Teacher, *, top_logprobs: int,
            progress: Callable[[str], None] = lambda m: None) -> RescoreReport:
    if teacher.identity.backend == STUDENT_BACKEND:
        raise ScoringUnsupported(f"teacher '{teacher.identity.name}' is a student; a student's scores would distil "
                                 "the student into itself: name an embedded teacher")
    if not teacher.can_score:
        raise ScoringUnsupported(f"teacher '{teacher.identity.name}' ({teacher.identity.backend}) cannot score a given "
                                 "text; name an embedded teacher, or an Ollama teacher whose model file is on this disk")
    report = RescoreReport()
    name = teacher.identity.name
    for session_id in store.readable_session_ids():
        steps = sorted({r.step_index for r in store.rows(session_id) if r.is_worker and r.chosen})
        for step_index in steps:
            rows = store.worker_rows(session_id, step_index)
            first = rows[0]
            lp = first.chosen.logprobs
            if lp is not None and lp.scorer.name == name and lp.prompt_sha == first.prompt.sha:
                report.skipped_steps += 1
                continue
            record = score(store, teacher, first.prompt, first.chosen.text, top_logprobs)
            store.commit(session_id, chosen_for_step=(step_index, replace(first.chosen, logprobs=record)))
            report.scored_steps += 1
            report.rows_updated += len(rows)
            progress(f"{session_id} step {step_index + 1}: {record.n_tokens} tokens scored")
    return report
