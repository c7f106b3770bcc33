"""What a session tells its caller as it works: typed events, one kind per thing that happened.

The app and the headless CLI render these; nothing else crosses from the engine to a screen (`STEP`
comes from the driver, engine/session/driver.py). `EventKind` is a `StrEnum`, so a kind compares equal
to its name (`event.kind == "plan"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable


class EventKind(StrEnum):
    PLAN = "plan"  # data: steps
    STEP = "step"  # the driver starts (or goes on with) a step; text: its wording; data: step_index, of
    INSTRUCTION = "instruction"  # data: cycle, teacher
    WORKER = "worker"  # data: teacher, candidate (its index), of (how many this cycle)
    CANDIDATE = "candidate"  # a candidate was judged; data: index, of, kind, problem, script, diff, remaining
    RUN = "run"  # data: ok, script
    FAILED = "failed"  # a cycle failed (malformed answer); data: reason
    SWITCH = "switch"  # the worker moved to another teacher; data: teacher
    PROPOSAL = "proposal"  # a script that runs waits for review; data: run, warnings
    ROW = "row"  # a row was stored; data: kind
    ACCEPTED = "accepted"  # data: step_index
    SKIPPED = "skipped"  # data: step_index
    STALLED = "stalled"  # data: attempts, reason
    DONE = "done"  # data: script
    NOTE = "note"  # anything worth a line


@dataclass(frozen=True)
class SessionEvent:
    kind: EventKind
    text: str
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[SessionEvent], None]


def ignore(event: SessionEvent) -> None:
    """The sink for callers that do not listen."""
