"""The review loop, written once: plan, then propose -> review -> apply the review, until the session is done.

Three callers play a session, and before this module each wrote the loop itself, so they drifted (a
stalled step, an edit or a skip handled in one and not in another): `shake session` (engine/cli.py,
feedback from a file or a terminal), a task episode (engine/session/episode.py, the automatic reviewer
as the user) and the app (tui/screens/session.py, the user at the keyboard). The loop differs between
them only in who reviews, so the reviewer is the one thing a caller supplies:

    Reviewer.more(session)             before each proposal: go on (True) or pause here
    Reviewer.review(session, proposal) the user's answer to a proposal: a Decision
    Reviewer.stalled(session, error)   the worker's attempts ran out: a Decision (Edit, Skip or Pause)

A Decision is what the user can do with a step: `Feedback` (their words, labelled), `Edit` (their own
script is the step's accepted output), `Skip` (leave the step undone) or `Pause` (stop; the session is
saved and resumes where it stopped). `apply` carries one out; the app, whose reviewer answers from the
keyboard in its own time, calls `apply` from its workers instead of `drive`, so every caller changes a
session through the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from engine.agents.analyzer import Classification
from engine.errors import AttemptsExhausted
from engine.session.events import EventKind, EventSink, SessionEvent, ignore
from engine.session.machine import Proposal, Session
from engine.store.schema import SessionStatus


@dataclass(frozen=True)
class Feedback:
    """The user's words with the label they carry (the analyzer's, or the user's override)."""

    classification: Classification


@dataclass(frozen=True)
class Edit:
    """The user's own script is the step's accepted output (origin `user_edit`)."""

    script: str


@dataclass(frozen=True)
class Skip:
    """Leave the current step undone and go on to the next."""


@dataclass(frozen=True)
class Pause:
    """Stop here; the session is saved as it is and resumes from this point."""

    reason: str = ""


Decision = Feedback | Edit | Skip | Pause


class Reviewer(Protocol):
    """Who answers the session's proposals: a feedback file, a terminal, a task's hidden checks."""

    def more(self, session: Session) -> bool: ...

    def review(self, session: Session, proposal: Proposal) -> Decision: ...

    def stalled(self, session: Session, error: AttemptsExhausted) -> Decision: ...


class Ending(StrEnum):
    DONE = "done"  # every step accepted or skipped
    PAUSED = "paused"  # the reviewer paused (no more feedback, a review budget spent)
    STALLED = "stalled"  # the worker's attempts ran out and the reviewer left the step as it is


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    reason: str = ""


def apply(session: Session, decision: Decision, emit: EventSink = ignore) -> bool:
    """Carry out `decision` on the session; False for a Pause (nothing changes)."""
    match decision:
        case Feedback(classification):
            session.apply_feedback(classification, emit=emit)
        case Edit(script):
            session.accept_user_edit(script, emit=emit)
        case Skip():
            session.skip_step(emit=emit)
        case Pause():
            return False
        case _:
            raise TypeError(f"not a review decision: {decision!r}")
    return True


def drive(session: Session, reviewer: Reviewer, emit: EventSink = ignore, *, max_steps: int | None = None) -> Outcome:
    """Play `session` to its end or until the reviewer pauses. A session that was planned, or stopped
    mid-step, goes on from where its store says it is."""
    if session.status == SessionStatus.PLANNING:
        session.plan(emit=emit, max_steps=max_steps)
    while session.status != SessionStatus.DONE:
        if not reviewer.more(session):
            return Outcome(Ending.PAUSED)
        index = session.step_index
        emit(SessionEvent(EventKind.STEP, session.step_text, {"step_index": index, "of": len(session.steps)}))
        try:
            proposal = session.propose(emit=emit)
        except AttemptsExhausted as err:
            decision = reviewer.stalled(session, err)
            if not apply(session, decision, emit):
                return Outcome(Ending.STALLED, str(err))
            continue
        decision = reviewer.review(session, proposal)
        if not apply(session, decision, emit):
            return Outcome(Ending.PAUSED, decision.reason)
    return Outcome(Ending.DONE)
