"""One task of the suite as a headless session, with the automatic reviewer as the user.

The loop is the driver's (engine/session/driver.py, the one `shake session` and the app use): plan, then
propose -> review -> the analyzer labels the reviewer's words -> apply the feedback, until the step is
accepted, the reviewer has answered `max_reviews` times, or the worker's attempts run out. This module
supplies only the user: `TaskUser`, the task's hidden checks speaking through `engine.tasks.Reviewer`. The reviewer's words go through
the real feedback analyzer; when its label differs from what the reviewer meant, the reviewer
overrides it as a user would in the app (one key), and the disagreement is counted.

Resumable: the session of a task is found again by its script path (`WORKDIR/<task id>/<file>`), so
a killed episode continues from the session's last saved state instead of starting over.

`user_fix`: when the reviewer's last answer would still be a rejection, it acts instead as a user who
gives up on the teacher and fixes the script in their editor: `Session.accept_user_edit` with the
task's reference solution, so the step's chosen is the fixed script (origin `user_edit`) and the
failed proposals stay its rejected rows. That is the app's $EDITOR path, and it lets a weak teacher's
failures become preference rows. On a stalled step the user writes the script themselves: the failed
attempts' rows get it as their chosen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from engine.agents.analyzer import Classification
from engine.config import Config
from engine.errors import AttemptsExhausted
from engine.session.driver import Decision, Edit, Feedback, Pause, drive
from engine.session.events import SessionEvent, ignore
from engine.session.machine import Proposal, Session
from engine.store import DatasetStore
from engine.tasks.reviewer import Review, Reviewer
from engine.tasks.task import Task
from engine.teachers.pool import TeacherPool


@dataclass(frozen=True)
class EpisodeResult:
    task_id: str
    session_id: str
    accepted: bool
    cycles: int  # worker cycles of the step when it ended (error cycles included)
    reviews: int
    analyzer_agreed: int  # reviews whose analyzer label was what the reviewer meant
    analyzer_asked: int
    cheats: int  # reviews in which the structural check found a cheat
    stalled: bool  # the worker's attempts ran out
    user_fixed: bool  # accepted as the user's own edit (the reference), not as a teacher's proposal
    first_passed: bool  # the first proposal passed the hidden checks
    last_problem: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def task_script_path(workdir: Path, task: Task) -> Path:
    return Path(workdir) / task.id / task.filename


def _find_session(store: DatasetStore, path: Path) -> str | None:
    wanted = str(path.resolve())
    for sid in store.session_ids():
        if store.load_state(sid).script_path == wanted:
            return sid
    return None


class TaskUser:
    """The driver's reviewer for a task: the hidden checks' verdict in words, labelled by the real
    analyzer and overridden where the analyzer mislabels them; `max_reviews` answers at most; with
    `user_fix`, the task's reference as the user's own edit where the teachers' last try fails."""

    def __init__(self, task: Task, reviewer: Reviewer, *, max_reviews: int, reviews: int, user_fix: bool,
                 on_review: Callable[[Review, Classification], None] | None) -> None:
        self.task, self.reviewer = task, reviewer
        self.max_reviews, self.reviews, self.user_fix, self.on_review = max_reviews, reviews, user_fix, on_review
        self.agreed = self.asked = self.cheats = 0
        self.stalled_on = False
        self.first_passed = False
        self.last_problem: str | None = None

    def more(self, session: Session) -> bool:
        return self.reviews < self.max_reviews

    def review(self, session: Session, proposal: Proposal) -> Decision:
        review = self.reviewer.review(proposal.script, proposal.cycle, base_script=proposal.base_script)
        if self.reviews == 0:
            self.first_passed = review.passed
        label = session.classify(review.feedback)
        if label.source != "explicit":
            self.asked += 1
            self.agreed += label.label == review.label
        if label.label != review.label:  # the user overrides the analyzer's label before it is committed
            label = Classification(review.label, "user", review.feedback, label.raw)
        if self.on_review is not None:
            self.on_review(review, label)
        self.cheats += review.cheat is not None
        self.last_problem = review.problem
        self.reviews += 1
        if self.user_fix and not review.passed and self.reviews >= self.max_reviews:
            return Edit(self.task.reference)  # the user fixes it by hand
        return Feedback(label)

    def stalled(self, session: Session, error: AttemptsExhausted) -> Decision:
        self.stalled_on, self.last_problem = True, str(error)
        # the teachers gave nothing to review: the user writes the step themselves, or leaves it
        return Edit(self.task.reference) if self.user_fix else Pause(str(error))


def run_episode(store: DatasetStore, pool: TeacherPool, config: Config, task: Task, workdir: Path, *,
                max_reviews: int = 3, seed: int = 0, user_fix: bool = False, emit: Callable[[SessionEvent], None] | None = None,
                on_review: Callable[[Review, Classification], None] | None = None) -> EpisodeResult:
    path = task_script_path(workdir, task)
    session_id = _find_session(store, path) if path.exists() else None
    if session_id is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(task.script, encoding="utf-8")
        session = Session.start(store, pool, config, path, task.request)
    else:
        session = Session.resume(store, pool, config, session_id)
    reviews = sum(1 for r in store.rows(session.id) if r.rejected and r.rejected.kind in ("redo", "further_edit"))
    user = TaskUser(task, Reviewer(task, config.runner, seed=seed), max_reviews=max_reviews, reviews=reviews,
                    user_fix=user_fix, on_review=on_review)
    drive(session, user, emit or ignore, max_steps=1)
    cycles = session.steps[0].cycles if session.steps else 0
    user_fixed = any(r.chosen is not None and r.chosen.origin == "user_edit" for r in store.rows(session.id))
    return EpisodeResult(task.id, session.id, session.status == "done", cycles, user.reviews,
                         user.agreed, user.asked, user.cheats, user.stalled_on, user_fixed, user.first_passed,
                         user.last_problem)
