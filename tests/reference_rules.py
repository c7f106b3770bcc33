"""A reference model of the paper's row rules: a small pure function, events in, expected worker rows out.

It knows nothing of the engine's code; the stateful test (`test_session_stateful.py`) drives the real
`Session` with the same events and compares the store with what this function says.

Rules (shared/README.md §1, and the engine's documented policies):
- a step's cycles number from 1; a worker answer that is malformed is a failed attempt and writes no row;
  one that fails when run, or that changes nothing (the current script again), writes an `error` row; Redo and Further edit write rows of their kind;
- failed attempts (malformed, error, Redo) count towards a switch to the next worker teacher after
  `switch_after` of them; a propose call gives up after `switch_after x len(workers)` attempts (a stall),
  which also puts the first teacher back;
- in side-chain mode, a student answer that is malformed is a `student` row of the cycle;
- on Accepted, every worker row of the step takes the accepted output as its chosen, and a step with no
  teacher rejection (error, Redo, Further edit) gets one row with an empty rejected;
- soft labels: with a KD teacher it scores every chosen; otherwise the generator (if it is no student)
  keeps or re-scores its own; a student's chosen has none (no teacher can score here but the generator);
- a cancelled propose changes nothing;
- the user's own script (`accept_user_edit`) on a proposal: the same script is an acceptance; another
  makes the proposal a Further-edit row and the user's script the chosen, scored by the KD teacher or
  else the first worker teacher that is no student; on a stalled step it is the chosen of the rows the
  step has (one empty-rejected row when none is a teacher rejection).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cycle:
    kind: str  # malformed | error | ok
    script: str
    student_malformed: bool = True  # side-chain: the student's answer to this cycle


@dataclass(frozen=True)
class Propose:
    cycles: tuple[Cycle, ...]


@dataclass(frozen=True)
class Feedback:
    label: str  # redo | further_edit | accepted


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class UserEdit:
    script: str


@dataclass(frozen=True)
class ExpectedRow:
    step_index: int
    cycle: int
    kind: str | None  # None: the empty-rejected row
    script: str  # the rejected's script ("" for the empty row)
    teacher: str  # who wrote the rejected ("" for the empty row)
    chosen_script: str | None
    chosen_scorer: str | None  # whose soft labels the chosen carries


@dataclass
class _Step:
    cycle: int = 0
    teacher_index: int = 0
    failures: int = 0
    rows: list[list] = field(default_factory=list)  # [cycle, kind, script, teacher]
    pending: tuple[int, str, str] | None = None  # (cycle, script, teacher)


DEFAULT_ANSWER = Cycle("ok", "print('default')\n", student_malformed=True)


def expected_rows(events, *, workers: list[str], switch_after: int, side_chain: bool, kd_teacher: str | None,
                  students: set[str], steps: int, start_script: str) -> tuple[list[ExpectedRow], dict]:
    """The worker rows the rules call for, and the session's expected position."""
    out: list[ExpectedRow] = []
    index, step, done, stalled = 0, _Step(), False, False
    current = start_script

    def fail() -> None:
        step.failures += 1
        if step.failures >= switch_after and len(workers) > 1:
            step.teacher_index = (step.teacher_index + 1) % len(workers)
            step.failures = 0

    for event in events:
        if done:
            break
        if isinstance(event, Cancel):
            continue
        if isinstance(event, Propose):
            if step.pending is not None:
                continue
            stalled = False
            queue = list(event.cycles)
            for _ in range(switch_after * len(workers)):
                answer = queue.pop(0) if queue else DEFAULT_ANSWER
                step.cycle += 1
                teacher = workers[step.teacher_index % len(workers)]
                if side_chain and answer.student_malformed:
                    step.rows.append([step.cycle, "student", "", "s1"])
                if answer.kind == "malformed":
                    fail()
                elif answer.kind == "error" or answer.script.strip() == current.strip():
                    # a script that fails, or one that changes nothing (issue #26), is an error row
                    step.rows.append([step.cycle, "error", answer.script, teacher])
                    fail()
                else:
                    step.pending = (step.cycle, answer.script, teacher)
                    break
            else:
                stalled = True
                step.teacher_index, step.failures = 0, 0
            continue
        user_scorer = kd_teacher or next(w for w in workers if w not in students)

        def accept(cycle: int, chosen: str, scorer: str | None) -> None:
            nonlocal index, step, done, stalled, current
            current = chosen
            taught = any(r[1] in ("error", "redo", "further_edit") for r in step.rows)
            if not taught:
                step.rows.append([cycle, None, "", ""])
            for c, kind, s, t in step.rows:
                out.append(ExpectedRow(index, c, kind, s, t, chosen, scorer))
            index, step, stalled = index + 1, _Step(), False
            done = index >= steps

        def generator_scorer(teacher: str) -> str | None:
            return kd_teacher if kd_teacher else (None if teacher in students else teacher)

        if isinstance(event, UserEdit):
            if step.pending is not None:
                cycle, script, teacher = step.pending
                step.pending = None
                if event.script == script:
                    accept(cycle, script, generator_scorer(teacher))
                else:
                    step.rows.append([cycle, "further_edit", script, teacher])
                    accept(cycle, event.script, user_scorer)
            elif stalled:
                accept(step.cycle, event.script, user_scorer)
            continue
        assert isinstance(event, Feedback) and step.pending is not None
        cycle, script, teacher = step.pending
        step.pending = None
        if event.label in ("redo", "further_edit"):
            step.rows.append([cycle, event.label, script, teacher])
            if event.label == "redo":
                fail()
            else:
                current = script
            continue
        accept(cycle, script, generator_scorer(teacher))
    for c, kind, s, t in step.rows:
        out.append(ExpectedRow(index, c, kind, s, t, None, None))
    position = {"step_index": index, "done": done, "review": step.pending is not None, "stalled": stalled}
    return out, position
