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
- answers, with an echo test (`shake data check` passes `engine.prompts.echo`): no instruction, step,
  reasoning or chosen repeats the prompt's own text (a format placeholder, the system text, the
  format's example), which rows written before issue #26 often did;
- soft labels: the blob exists, is intact and holds `n_tokens` tokens of top-`k`; the scorer is never a
  student, and a chosen written by a student never carries its own log-probabilities; a re-scoring was
  computed under the row's prompt; the prompt they were computed under is known; their token bytes are
  exactly the chosen's text.

`fix_data` repairs what is safe after copying `sessions/` to `DATA/backups/check-<time>/`: it drops
soft labels that break the rules (the hard labels stay); a session file that does not read (cut short,
or one row broken) is rebuilt from its state and every row that still parses (`salvage.py`), saying
how many rows were recovered and lost, and the damaged original goes to `sessions/.bad/`, like a file
that is not a session file at all. What it cannot decide (a step whose rows disagree on the chosen)
stays a problem.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import shutil
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from engine.agents.parsing import parse_label
from engine.errors import BadDataFile, StoreError
from engine.logprobs import TokenLogprobs
from engine.store.atomic import AtomicJSONStorage
from engine.store.codec import SchemaError, encode
from engine.store.salvage import salvage
from engine.store.schema import (Agent, LogprobRecord, LogprobSource, Origin, RejectedKind, Row, StepStatus,
                                 parse_session_file, worker_rows_of_step)
from engine.store.store import BACKUPS_KEPT, MAX_SESSION_FILE_BYTES, DatasetStore

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
    problem = _blob_problem(lp, chosen.text, chosen.thinking, store, blob_cache)
    if problem:
        return problem
    context = chosen.context_logprobs
    if context is not None:
        if context.scorer.backend == STUDENT:
            return f"context soft labels scored by the student '{context.scorer.name}'"
        problem = _blob_problem(context, chosen.text, chosen.thinking, store, blob_cache)
        if problem:
            return f"context {problem}"
    return None


def _blob_problem(lp: LogprobRecord, text: str, thinking_text: str, store: DatasetStore,
                  blob_cache: dict[str, TokenLogprobs | str]) -> str | None:
    """Why the record's blobs are not `text`'s (and `thinking_text`'s) soft labels (missing, corrupt,
    another shape or text), or None."""
    arrays = _read_blob(store, lp.blob, blob_cache)
    if isinstance(arrays, str):
        return f"log-probability blob {lp.blob[:12]} is {arrays}"
    if len(arrays) != lp.n_tokens or arrays.k != lp.k:
        return f"log-probability blob holds {len(arrays)} tokens of top-{arrays.k}, the row says {lp.n_tokens} of top-{lp.k}"
    if not arrays.spells(text):
        return "soft labels whose token bytes are not the chosen's text (they belong to another text)"
    if lp.thinking_blob:
        thinking = _read_blob(store, lp.thinking_blob, blob_cache)
        if isinstance(thinking, str):
            return f"the reasoning's log-probability blob {lp.thinking_blob[:12]} is {thinking}"
        if len(thinking) != lp.thinking_tokens:
            return f"the reasoning's log-probability blob holds {len(thinking)} tokens, the row says {lp.thinking_tokens}"
        if not thinking.spells(thinking_text):
            return "the reasoning's soft labels are not the chosen's thinking (they belong to another text)"
    return None


def _read_blob(store: DatasetStore, digest: str, blob_cache: dict[str, TokenLogprobs | str]) -> TokenLogprobs | str:
    """A blob's arrays, or what is wrong with its file (remembered: a step's worker rows share blobs)."""
    if digest not in blob_cache:
        path = store.blobs.path_for(digest)
        try:
            data = path.read_bytes()
            blob_cache[digest] = ("corrupt (its hash does not match its name)"
                                  if hashlib.sha256(data).hexdigest() != digest else TokenLogprobs.from_npz_bytes(data))
        except FileNotFoundError:
            blob_cache[digest] = f"missing ({path})"
        except (OSError, ValueError, KeyError) as err:
            blob_cache[digest] = f"unreadable ({err})"
    return blob_cache[digest]


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


def _users_label(rows: list[Row], step_index: int, wording: str, cycle: int) -> str | None:
    """The label the user gave the proposal of this cycle, as the worker rows of the step's wording
    then (the analyzer row's own `step`) record it."""
    for row in worker_rows_of_step(rows, step_index, wording):
        if row.rejected is not None and row.rejected.cycle == cycle and row.rejected.kind in (
                RejectedKind.REDO, RejectedKind.FURTHER_EDIT):
            return row.rejected.kind.value
        if row.chosen is not None and row.chosen.cycle == cycle:
            return "accepted"
    return None


EchoTest = Callable[[str], "str | None"]  # why a text repeats the prompt's own words (engine.prompts.echo)
_MARKER = re.compile(r"^\s*(?:REASONING|INSTRUCTION|LABEL|VERDICT)\s*:\s*", re.IGNORECASE)


def _echo_problems(row: Row, echo: EchoTest) -> list[str]:
    """Fields of the row that repeat prompt text instead of answering (format placeholders, the system
    text, the format's example): an instruction, a reasoning, a chosen's lines (issue #26)."""
    fields: list[tuple[str, str]] = []
    if row.is_worker:
        fields.append(("the prompt's instruction", row.prompt.instruction))
        for part, name in ((row.chosen, "chosen"), (row.rejected, "rejected")):
            if part is not None:
                fields += [(f"the {name}'s reasoning", part.reasoning), (f"the {name}'s script", part.script)]
    elif row.chosen is not None:
        fields += [(f"the chosen {row.agent} answer", _MARKER.sub("", line)) for line in row.chosen.text.split("\n")]
    out = []
    for name, text in fields:
        why = echo(text) if text and text.strip() else None
        if why:
            out.append(f"{name} is not an answer: {why} ({' '.join(text.split())[:60]!r})")
    return out


def check_data(data_dir: Path, *, echo: EchoTest | None = None) -> list[Problem]:
    """Every problem of the dataset; with `echo`, also the fields that repeat the prompt's own text."""
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
                for message in _row_problems(row) + (_echo_problems(row, echo) if echo else []):
                    problems.append(Problem(file, message, row.step_index, row.row_id))
                message = _soft_label_problem(row, store, blob_cache)
                if message:
                    problems.append(Problem(file, message, row.step_index, row.row_id, fixable=True))
                if row.agent == Agent.ANALYZER and row.chosen is not None:
                    users = _users_label(rows, row.step_index, row.step, row.cycle)
                    said = parse_label(row.chosen.text)
                    if said is None:
                        problems.append(Problem(file, "an analyzer chosen that names no label", row.step_index,
                                                row.row_id))
                    elif users is not None and said != users:
                        problems.append(Problem(file, f"the analyzer row's chosen says {said} where the user's label "
                                                      f"was {users}", row.step_index, row.row_id))
            for index, plan_step in enumerate(state.steps):
                why = echo(plan_step.text) if echo else None
                if why:
                    problems.append(Problem(file, f"the step is not a step: {why} ({plan_step.text[:60]!r})", index))
                step_rows = worker_rows_of_step(rows, index, plan_step.text)
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
    try:
        shutil.copytree(store.sessions_dir, backup / "sessions", ignore=shutil.ignore_patterns(".backups"))
    except OSError as err:  # nothing is changed without its backup
        raise StoreError(f"could not back up {store.sessions_dir} to {backup} ({err}); nothing was changed") from None
    report = FixReport(backup)
    for sid in store.session_ids():
        try:
            store.load_state(sid)
        except BadDataFile as err:
            report.actions.append(_rebuild(store, sid, err))
    blob_cache: dict[str, TokenLogprobs | str] = {}

    def repair(row: Row) -> Row:
        message = _soft_label_problem(row, store, blob_cache)
        if not message:
            return row
        report.actions.append(f"{row.session_id}.json row {row.row_id}: dropped its soft labels ({message}); "
                              "the hard label stays")
        return replace(row, chosen=replace(row.chosen, logprobs=None, context_logprobs=None))

    for sid in store.session_ids():
        store.map_rows(sid, repair)
    return report


def _rebuild(store: DatasetStore, sid: str, err: BadDataFile) -> str:
    """A session file that does not read: rebuilt from what parses, the original set aside; what was done."""
    path = store.sessions_dir / f"{sid}.json"
    try:
        size = path.stat().st_size
        saved = salvage(path.read_bytes(), path.name) if size <= MAX_SESSION_FILE_BYTES else None
    except OSError as read_error:
        raise StoreError(f"could not read {path}: {read_error.strerror}") from None
    moved = store.set_aside(sid)
    if saved is None or saved.file is None:
        return f"moved {path.name} to {moved} ({err})"
    store.restore(sid, saved.file)
    where = (f"cut short (its JSON stops at character {saved.cut_at})" if saved.cut_at is not None
             else "whole JSON with rows that break their record")
    lost = f"{saved.lost} row(s) begun in it did not parse"
    if saved.cut_at is not None:  # what followed the cut is gone; the rotating backup says what it held
        kept = {row.row_id for row in saved.file.rows.values()}
        backup, missing = _rows_only_in_backup(store, sid, kept)
        lost += (f", and {missing} more row(s) in its backup {backup} are not in it" if backup is not None
                 else "; rows written after the cut cannot be counted (no readable backup)")
    return (f"{path.name} was {where}: rebuilt it with the session state and the {saved.recovered} row(s) that "
            f"parse; lost: {lost}; the damaged original is {moved}")


def _rows_only_in_backup(store: DatasetStore, sid: str, kept: set[str]) -> tuple[Path | None, int]:
    """The newest readable rotating backup of a session file, and how many of its rows are not in `kept`."""
    for number in range(1, BACKUPS_KEPT + 1):
        path = store.sessions_dir / ".backups" / f"{sid}.json.{number}"
        try:
            raw = AtomicJSONStorage(path, max_bytes=MAX_SESSION_FILE_BYTES).read()
            rows = parse_session_file(raw, str(path)).rows if raw is not None else None
        except (StoreError, SchemaError):
            continue
        if rows is not None:
            return path, len({row.row_id for row in rows.values()} - kept)
    return None, 0
