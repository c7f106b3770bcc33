"""`shake data check [--fix]`: every invariant of the dataset, verified on any data directory.

Each problem is one line naming the session file, the step and the row. The invariants:

- files: every `sessions/*.json` is a session file of a known schema version whose every field has
  the right type (`schema.py`);
- rows: ids are unique; a row's `rejected` and `chosen` belong to the row's own agent (no row carries
  another agent's chosen); a student negative names its student version; a user's edit is only ever a
  worker's chosen and a user's label only an analyzer's;
- analyzer rows: the chosen names the label the user gave that cycle (read off the worker rows: a Redo
  or Further-edit row of that cycle, or the step's chosen from that cycle);
- steps: the worker rows of an accepted step all carry the same chosen, a step that is not accepted has
  none; an accepted step with no teacher rejection (error, Redo, Further edit) has exactly one row with
  an empty `rejected`, one with teacher rejections has none;
- soft labels: the blob exists, is intact and holds `n_tokens` tokens of top-`k`; the scorer is never a
  student, and a chosen written by a student never carries its own log-probabilities; a re-scoring was
  computed under the row's prompt; the prompt they were computed under is known.

`fix_data` repairs what is safe after copying `sessions/` to `DATA/backups/check-<time>/`: it drops
soft labels that break the rules (the hard labels stay) and moves files that are not session files to
`sessions/.bad/`. What it cannot decide (a step whose rows disagree on the chosen) stays a problem.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.agents.parsing import parse_label
from engine.errors import BadDataFile, StoreError
from engine.logprobs import TokenLogprobs
from engine.store.codec import encode
from engine.store.schema import Agent, LogprobSource, Origin, RejectedKind, Row, StepStatus, worker_rows_of_step
from engine.store.store import DatasetStore

STUDENT = "student"
TEACHER_REJECTIONS = (RejectedKind.ERROR, RejectedKind.REDO, RejectedKind.FURTHER_EDIT)


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    step: int | None = None
    row: str | None = None
    fixable: bool = False  # `--fix` can repair it (drop the soft labels, set the file aside)

    def line(self) -> str:
        where = [self.file]
        if self.step is not None:
            where.append("planning" if self.step < 0 else f"step {self.step + 1}")
        if self.row:
            where.append(f"row {self.row}")
        return ": ".join(where + [self.message])

    def as_dict(self) -> dict:
        return {"file": self.file, "step": self.step, "row": self.row, "message": self.message, "fixable": self.fixable}


@dataclass
class FixReport:
    backup: Path
    actions: list[str] = field(default_factory=list)


def _soft_label_problem(row: Row, store: DatasetStore, blob_cache: dict[str, TokenLogprobs | str]) -> str | None:
    """Why this row's soft labels break the rules, or None."""
    chosen = row.chosen
    lp = chosen.logprobs if chosen else None
    if lp is None:
        return None
    if lp.scorer.backend == STUDENT:
        return f"soft labels scored by the student '{lp.scorer.name}' (a student distilled into itself)"
    if chosen.teacher is not None and chosen.teacher.backend == STUDENT and lp.source == LogprobSource.GENERATION:
        return f"soft labels are the student '{chosen.teacher.name}''s own log-probabilities"
    if lp.prompt_sha is None:
        return "soft labels computed under an unknown prompt (data written before schema 2)"
    if lp.source == LogprobSource.RESCORED and lp.prompt_sha != row.prompt.sha:
        return "soft labels re-scored under another prompt than the row's"
    if lp.blob not in blob_cache:
        path = store.blobs.path_for(lp.blob)
        try:
            data = path.read_bytes()
            blob_cache[lp.blob] = ("corrupt (its hash does not match its name)"
                                   if hashlib.sha256(data).hexdigest() != lp.blob else TokenLogprobs.from_npz_bytes(data))
        except FileNotFoundError:
            blob_cache[lp.blob] = f"missing ({path})"
        except (OSError, ValueError, KeyError) as err:
            blob_cache[lp.blob] = f"unreadable ({err})"
    arrays = blob_cache[lp.blob]
    if isinstance(arrays, str):
        return f"log-probability blob {lp.blob[:12]} is {arrays}"
    if len(arrays) != lp.n_tokens or arrays.k != lp.k:
        return f"log-probability blob holds {len(arrays)} tokens of top-{arrays.k}, the row says {lp.n_tokens} of top-{lp.k}"
    return None


def _row_problems(row: Row) -> list[str]:
    out = []
    for part, name in ((row.rejected, "rejected"), (row.chosen, "chosen")):
        if part is not None and part.agent != row.agent:
            out.append(f"a {row.agent} row carries the {part.agent}'s {name}")
    if row.rejected is not None:
        if row.rejected.kind == RejectedKind.STUDENT and not row.rejected.student_version:
            out.append("a student negative without its student version")
        if row.rejected.kind != RejectedKind.STUDENT and not row.is_worker:
            out.append(f"a {row.agent} row with a rejected of kind {row.rejected.kind} (only students are refused there)")
    if row.chosen is not None:
        if row.chosen.origin == Origin.USER_EDIT and not row.is_worker:
            out.append("a user's script edit as the chosen of a non-worker row")
        if row.chosen.origin == Origin.USER_LABEL and row.agent != Agent.ANALYZER:
            out.append("a user's label as the chosen of a non-analyzer row")
        if row.is_worker and not row.chosen.script:
            out.append("a worker row whose chosen holds no script")
    return out


def _users_label(rows: list[Row], step_index: int, cycle: int) -> str | None:
    """The label the user gave the proposal of this cycle, as the worker rows record it."""
    for row in worker_rows_of_step(rows, step_index):
        if row.rejected is not None and row.rejected.cycle == cycle and row.rejected.kind in (
                RejectedKind.REDO, RejectedKind.FURTHER_EDIT):
            return row.rejected.kind.value
        if row.chosen is not None and row.chosen.cycle == cycle:
            return "accepted"
    return None


def check_data(data_dir: Path) -> list[Problem]:
    data_dir = Path(data_dir)
    if not (data_dir / "sessions").is_dir():
        raise StoreError(f"no dataset at {data_dir} (no sessions/ folder)")
    problems: list[Problem] = []
    blob_cache: dict[str, TokenLogprobs | str] = {}
    seen_ids: dict[str, str] = {}
    with DatasetStore(data_dir, writable=False, skip_bad=True) as store:
        ids = store.readable_session_ids()
        for bad in store.bad_files.values():
            problems.append(Problem(bad.path.name, bad.problem.replace(f"{bad.path}: ", ""), fixable=True))
        for sid in ids:
            file = f"{sid}.json"
            state = store.load_state(sid)
            rows = list(store.rows(sid))
            for row in rows:
                if row.row_id in seen_ids:
                    problems.append(Problem(file, f"row id also used in {seen_ids[row.row_id]}", row.step_index, row.row_id))
                seen_ids[row.row_id] = file
                if row.session_id != sid:
                    problems.append(Problem(file, f"the row names session {row.session_id}", row.step_index, row.row_id))
                if row.step_index >= len(state.steps) or (row.step_index < 0 and row.agent != Agent.PLANNER):
                    problems.append(Problem(file, f"step {row.step_index + 1} is not in the session's plan",
                                            row.step_index, row.row_id))
                for message in _row_problems(row):
                    problems.append(Problem(file, message, row.step_index, row.row_id))
                message = _soft_label_problem(row, store, blob_cache)
                if message:
                    problems.append(Problem(file, message, row.step_index, row.row_id, fixable=True))
                if row.agent == Agent.ANALYZER and row.chosen is not None:
                    users = _users_label(rows, row.step_index, row.cycle)
                    said = parse_label(row.chosen.text)
                    if said is None:
                        problems.append(Problem(file, "an analyzer chosen that names no label", row.step_index,
                                                row.row_id))
                    elif users is not None and said != users:
                        problems.append(Problem(file, f"the analyzer row's chosen says {said} where the user's label "
                                                      f"was {users}", row.step_index, row.row_id))
            for index, plan_step in enumerate(state.steps):
                step_rows = worker_rows_of_step(rows, index)
                if plan_step.status == StepStatus.ACCEPTED:
                    if not step_rows:
                        problems.append(Problem(file, "an accepted step without worker rows", index))
                        continue
                    chosen = {repr(encode(r.chosen)) for r in step_rows}
                    if any(r.chosen is None for r in step_rows):
                        problems.append(Problem(file, "an accepted step with worker rows that have no chosen", index))
                    elif len(chosen) > 1:
                        problems.append(Problem(file, f"the step's {len(step_rows)} worker rows carry {len(chosen)} "
                                                      "different chosen outputs", index))
                    taught = [r for r in step_rows if r.rejected is not None and r.rejected.kind in TEACHER_REJECTIONS]
                    empty = [r for r in step_rows if r.rejected is None]
                    if not taught and len(empty) != 1:
                        problems.append(Problem(file, f"an accepted step with no teacher rejection needs one row with an "
                                                      f"empty rejected; it has {len(empty)}", index))
                    if taught and empty:
                        problems.append(Problem(file, "an empty-rejected row in a step that has teacher rejections",
                                                index, empty[0].row_id))
                else:
                    for row in step_rows:
                        if row.chosen is not None:
                            problems.append(Problem(file, f"a chosen in a step that is {plan_step.status}", index,
                                                    row.row_id))
    return problems


def fix_data(store: DatasetStore) -> FixReport:
    """Back up `sessions/`, then repair what is safe (see the module docstring)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = store.data_dir / "backups" / f"check-{stamp}"
    shutil.copytree(store.sessions_dir, backup / "sessions", ignore=shutil.ignore_patterns(".backups"))
    report = FixReport(backup)
    for sid in store.session_ids():
        try:
            store.load_state(sid)
        except BadDataFile as err:
            moved = store.set_aside(sid)
            report.actions.append(f"moved {moved.name} to {moved.parent} ({err})")
    blob_cache: dict[str, TokenLogprobs | str] = {}

    def repair(row: Row) -> Row:
        message = _soft_label_problem(row, store, blob_cache)
        if not message:
            return row
        report.actions.append(f"{row.session_id}.json row {row.row_id}: dropped its soft labels ({message}); "
                              "the hard label stays")
        return replace(row, chosen=replace(row.chosen, logprobs=None))

    for sid in store.session_ids():
        store.map_rows(sid, repair)
    return report
