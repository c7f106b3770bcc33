"""Which teacher's log-probabilities a chosen output carries, and under which prompt.

The student trains on `chosen` given the row's prompt, so its soft labels are only right when they
were computed under that very prompt by a teacher (never by a student: a student distilled into itself
learns nothing). The policy, in order:

1. With `[student] kd_teacher`, that teacher scores every chosen it did not generate under the row's
   prompt itself, in one teacher-forced pass (`source = "rescored"`).
2. Otherwise the generating teacher's own log-probabilities are kept when they were computed under the
   row's prompt (`source = "generation"`); when the output came from a later cycle, the generator
   re-scores it under the row's prompt if it can (embedded llama.cpp; Ollama through the GGUF blob on
   this disk; a student never counts as a scorer).
3. When no teacher can score, a teacher's generation log-probabilities are kept with the prompt they
   were really computed under (`prompt_sha` differs from the row's): training decides per row whether
   to use them (KD) or not (NLL). A student's own never are: hard labels only.
4. A user's own edit is scored by the KD teacher, else the first worker teacher that can score.

Beside those, `for_context` keeps the generator's own log-probabilities when they were computed under
another prompt than the row's (the chosen came from a later cycle, whose messages held the error or the
feedback): a student trained on the bare first prompt with the labels of the richer context is context
distillation (issue #22), which `shake train --soft-labels context` chooses.

`shake data rescore` applies the same policy to a whole dataset with a named scorer.
"""

from __future__ import annotations

from engine.config import Config
from engine.errors import ConfigError, TeacherError
from engine.session.calls import logprob_record
from engine.session.events import EventKind, EventSink, SessionEvent, ignore
from engine.store.schema import LogprobRecord, LogprobSource, Output, Prompt
from engine.store.store import DatasetStore
from engine.teachers.base import Teacher
from engine.teachers.pool import TeacherPool

STUDENT_BACKEND = "student"


def is_student(teacher: Teacher) -> bool:
    return teacher.identity.backend == STUDENT_BACKEND


def can_score(teacher: Teacher) -> bool:
    """A teacher whose teacher-forced scores may label a chosen: it can score, and it is no student."""
    return bool(getattr(teacher, "can_score", False)) and not is_student(teacher)


def score(store: DatasetStore, scorer: Teacher, prompt: Prompt, text: str, top_logprobs: int) -> LogprobRecord:
    """One teacher-forced pass of `scorer` over `text` under `prompt`."""
    lp = scorer.score(prompt.chat(), text, top_logprobs=top_logprobs)
    return logprob_record(store, lp, source=LogprobSource.RESCORED, scorer=scorer.identity, prompt_sha=prompt.sha)


class SoftLabels:
    def __init__(self, pool: TeacherPool, config: Config, store: DatasetStore) -> None:
        self.pool = pool
        self.config = config
        self.store = store

    def _teacher(self, name: str) -> Teacher | None:
        try:
            return self.pool.get(name)
        except ConfigError:
            return None

    def scorer_candidates(self, output: Output) -> list[Teacher]:
        """The teachers that may score `output`, best first (rules 1, 2 and 4 of the module docstring)."""
        names = []
        if self.config.student.kd_teacher:
            names.append(self.config.student.kd_teacher)
        if output.teacher is not None:
            names.append(output.teacher.name)
        else:
            names += list(self.config.agents.get("worker", []))
        seen, out = set(), []
        for name in names:
            teacher = self._teacher(name) if name not in seen else None
            seen.add(name)
            if teacher is not None and can_score(teacher):
                out.append(teacher)
        return out

    @staticmethod
    def for_context(prompt: Prompt, output: Output, generated: LogprobRecord | None) -> LogprobRecord | None:
        """The generation's own soft labels where they are another context's than `prompt` (a teacher's only)."""
        if generated is None or generated.prompt_sha == prompt.sha:
            return None
        if output.teacher is None or output.teacher.backend == STUDENT_BACKEND:
            return None
        return generated

    def for_chosen(self, prompt: Prompt, output: Output, generated: LogprobRecord | None,
                   emit: EventSink = ignore) -> LogprobRecord | None:
        generator = output.teacher
        generator_is_student = generator is not None and generator.backend == STUDENT_BACKEND
        kd_name = self.config.student.kd_teacher
        generated_fits = (generated is not None and generated.prompt_sha == prompt.sha and not generator_is_student
                          and (not kd_name or (generator is not None and generator.name == kd_name)))
        if generated_fits:
            return generated
        for scorer in self.scorer_candidates(output):
            try:
                return score(self.store, scorer, prompt, output.text, self.config.teacher(scorer.identity.name).top_logprobs)
            except TeacherError as err:
                emit(SessionEvent(EventKind.NOTE, f"no re-scoring by '{scorer.identity.name}': {err}"))
        if generated is not None and not generator_is_student:
            emit(SessionEvent(EventKind.NOTE, "no teacher could score the accepted output under the step's prompt: "
                              "its own log-probabilities are kept, marked with the prompt they belong to"))
            return generated
        if generator_is_student:
            emit(SessionEvent(EventKind.NOTE, "the student wrote the accepted output and no teacher could score it: "
                              "hard labels only"))
        return None
