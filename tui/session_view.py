"""Read-only views of the engine's session state, shaped for the screens.

Why: a screen wants "step 2/3", "stalled after 6 attempts", "3 min ago"; the engine keeps a
`SessionState` record. This module is the one place in the app that reads that record, and it takes
a frozen copy, so that a screen never reads state a worker thread is changing.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ShakeError
from engine.store.schema import SessionState, StallInfo


@dataclass(frozen=True)
class StepView:
    number: int  # 1-based, as shown
    text: str
    status: str  # pending | running | review | stalled | accepted | skipped
    cycles: int


@dataclass(frozen=True)
class SessionView:
    id: str
    status: str  # planning | working | review | stalled | done
    request: str
    script_path: Path
    original_script: str
    current_script: str
    steps: tuple[StepView, ...]
    step_index: int
    cycle: int  # the current step's cycles so far
    failures: int  # failed attempts on the current teacher
    stall: StallInfo | None  # why the current step stalled
    done_steps: int  # accepted steps (`SessionState.done_steps`: a skipped step is not done)
    skipped_steps: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, state: SessionState) -> SessionView:
        steps = tuple(StepView(i + 1, s.text, s.status.value, s.cycles) for i, s in enumerate(state.steps))
        step = state.step
        return cls(
            id=state.session_id, status=state.status.value, request=state.request,
            script_path=Path(state.script_path), original_script=state.original_script,
            current_script=state.current_script, steps=steps, step_index=state.step_index, cycle=step.cycle,
            failures=step.failures, stall=step.stall, done_steps=state.done_steps,
            skipped_steps=state.skipped_steps, created_at=state.created_at, updated_at=state.updated_at,
        )

    @property
    def finished(self) -> bool:
        return self.status == "done"

    @property
    def current_step(self) -> StepView | None:
        return self.steps[self.step_index] if 0 <= self.step_index < len(self.steps) else None

    @property
    def accepted_steps(self) -> int:
        return self.done_steps

    @property
    def progress(self) -> str:
        """`step 2/3`, `planning`, `done 3/3`, `done 2/3, 1 skipped` (as `shake sessions` counts them)."""
        if self.status == "planning" or not self.steps:
            return "planning"
        if self.finished:
            skipped = f", {self.skipped_steps} skipped" if self.skipped_steps else ""
            return f"done {self.done_steps}/{len(self.steps)}{skipped}"
        return f"step {self.step_index + 1}/{len(self.steps)}"


def saved_sessions(store) -> list[SessionView]:
    """Every saved session the store can read, newest change first (an unreadable one is skipped
    here and reported by `shake sessions`)."""
    views = []
    for session_id in store.session_ids():
        try:
            views.append(SessionView.of(store.load_state(session_id)))
        except ShakeError:
            continue  # `shake data check` names the file and what is wrong with it
    return sorted(views, key=lambda v: v.updated_at, reverse=True)


def unfinished(views: list[SessionView]) -> list[SessionView]:
    return [v for v in views if not v.finished]


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 row`, `2 rows`, `0 sessions`."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def ago(stamp: str, now: _dt.datetime | None = None) -> str:
    """An ISO timestamp as `3 min ago`, `2 h ago`, `5 days ago` (the stamp itself when unreadable)."""
    try:
        then = _dt.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return stamp or "?"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.timezone.utc)
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return plural(seconds // 86400, "day") + " ago"


def shown_path(path: Path) -> Path:
    """A path as the user would type it: relative to the working directory when it is inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return Path(path)
