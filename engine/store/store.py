"""The DORPO dataset and the session state, on disk.

Layout of the data directory::

    .lock                       held by the one process that may write
    sessions/<session_id>.json  the session's state and its rows (tables meta, state, rows; `schema.py`)
    sessions/.backups/          rotating copies of each session file
    blobs/<ab>/<sha256>.npz     token log-probabilities, content-addressed, written once

Rows are sharded by session: an insert rewrites only its own session's file, so appending a row costs
the same whether the dataset holds a hundred rows or a hundred thousand. Log-probability arrays live in
blobs outside the JSON, and every write is atomic (see `atomic.py`), which is also what lets readers
work beside the writer: a reader (`writable=False`) takes no lock and always sees a whole file, old or
new.

The records and their rules are in `schema.py`; this module only stores them. Every file is checked
when read: a file that is not a session file is named with what is wrong and stops the command, unless
the caller asked to skip bad files (`skip_bad=True`), in which case it is left out and reported in
`bad_files`, never dropped silently.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from engine.errors import BadDataFile, StoreError, StoreLocked
from engine.logprobs import TokenLogprobs
from engine.store.atomic import AtomicJSONStorage, atomic_write_bytes, atomic_write_text
from engine.store.codec import SchemaError
from engine.store.schema import (
    Chosen,
    Exclusion,
    LogprobRecord,
    RejectedKind,
    Row,
    SessionFile,
    SessionState,
    parse_session_file,
    session_file_json,
    distinct_chosens,
    step_wording,
    worker_rows_of_step,
)

REJECTED_KINDS = tuple(k.value for k in RejectedKind)
BACKUPS_KEPT = 3  # rotating copies of each session file, in sessions/.backups/
BACKUP_EVERY = 50  # writes to a session file between backups (and one before its first write)
# A session file is read whole, and parsing JSON costs about 3.5 times its size in memory: a cap keeps
# every reader (the app, `shake train`, `data check`) bounded. A row holds at most about 600 KB (a script
# at the 200 KB limit in its prompt, its rejected and its chosen), so the cap is over a hundred such rows;
# the store refuses a commit that would pass it, so a larger file was not written by this store.
MAX_SESSION_FILE_BYTES = 64 << 20


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class DatasetStats:
    sessions: int
    rows: int
    complete_rows: int  # rows with a chosen
    pending_rows: int  # rows whose step is not accepted yet
    with_rejected: int
    with_logprobs: int
    excluded_rows: int
    soft_labels_refused: int  # chosens whose offered soft labels did not spell their text (dropped when written)
    chosen_bytes: int  # bytes of the distinct chosens (a step's worker rows share one)
    labelled_bytes: int  # of those, the bytes that carry soft labels
    by_kind: dict[str, int]
    by_agent: dict[str, int]

    @property
    def soft_label_coverage(self) -> float:
        """The share of chosen bytes that carry soft labels."""
        return self.labelled_bytes / self.chosen_bytes if self.chosen_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "soft_label_coverage": self.soft_label_coverage}


@dataclass
class BadFile:
    path: Path
    problem: str


@dataclass
class SnapshotInfo:
    path: Path
    sha256: str
    rows: int
    excluded: int = 0
    bad_files: list[BadFile] = field(default_factory=list)


class BlobStore:
    """Content-addressed, write-once files for log-probability arrays."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npz"

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        return digest

    def get(self, digest: str) -> bytes:
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"log-probability blob {digest} is missing from {self.root}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"log-probability blob {path} is corrupt (its hash does not match its name)")
        return data


class DatasetStore:
    """One data directory. Open with `writable=True` (the default) from exactly one process; any number
    of readers (`writable=False`) may work beside it."""

    def __init__(self, data_dir: Path, *, writable: bool = True, skip_bad: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.writable = writable
        self.skip_bad = skip_bad
        self.bad_files: dict[str, BadFile] = {}  # files left out, when skip_bad is on
        self.sessions_dir = self.data_dir / "sessions"
        self.blobs = BlobStore(self.data_dir / "blobs")
        self._files: dict[str, tuple[tuple[int, int], SessionFile]] = {}
        self._writes: dict[str, int] = {}
        self._lock_fd: int | None = None
        if writable:
            try:
                self.sessions_dir.mkdir(parents=True, exist_ok=True)
                self.blobs.root.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the data directory {self.data_dir}: {err.strerror}") from None
            self._acquire_lock()
            self._sweep_temp_files()
        elif self.data_dir.exists() and not self.data_dir.is_dir():
            raise StoreError(f"the data directory {self.data_dir} is not a directory")
        # a reader of a directory that does not exist yet sees an empty dataset

    # -- process lock -------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        path = self.data_dir / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a read-only data directory, or a lock file that is not ours to open
            raise StoreError(f"cannot open {path} to lock the data directory for writing: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"the data directory {self.data_dir} is in use by another shake process (pid {holder}); "
                "close it, or point SHAKE_DATA at another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _sweep_temp_files(self) -> None:
        """Temporary files of writes that a crash interrupted; the lock guarantees no writer owns them."""
        for folder in (self.data_dir, self.sessions_dir, *self.blobs.root.glob("*")):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    def _backup(self, session_id: str) -> None:
        """Rotate `.backups/<id>.json.1..N`: a copy of the session file before this process's first
        write to it, and every BACKUP_EVERY writes after."""
        count = self._writes.get(session_id, 0)
        self._writes[session_id] = count + 1
        source = self._path(session_id)
        if count % BACKUP_EVERY or not source.exists():
            return
        folder = self.sessions_dir / ".backups"
        folder.mkdir(exist_ok=True)
        for i in range(BACKUPS_KEPT - 1, 0, -1):
            older = folder / f"{session_id}.json.{i}"
            if older.exists():
                os.replace(older, folder / f"{session_id}.json.{i + 1}")
        atomic_write_bytes(folder / f"{session_id}.json.1", source.read_bytes())

    def close(self) -> None:
        self._files.clear()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> DatasetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- session files ------------------------------------------------------------------------
    def _path(self, session_id: str) -> Path:
        if not session_id or "/" in session_id or session_id.startswith(".") or "\x00" in session_id:
            raise StoreError(f"bad session id {session_id!r}")
        return self.sessions_dir / f"{session_id}.json"

    def _read(self, session_id: str) -> SessionFile:
        """The session file, checked; cached until the file changes on disk."""
        path = self._path(session_id)
        try:
            st = path.stat()
        except FileNotFoundError:
            known = ", ".join(self.session_ids()[-5:]) or "none"
            raise StoreError(f"no session '{session_id}' in {self.data_dir} (recent: {known})") from None
        key = (st.st_mtime_ns, st.st_size)
        cached = self._files.get(session_id)
        if cached and (self.writable or cached[0] == key):
            return cached[1]
        try:
            raw = AtomicJSONStorage(path, max_bytes=MAX_SESSION_FILE_BYTES).read()
            if raw is None:
                raise SchemaError(f"{path}: the file is empty")
            parsed = parse_session_file(raw, str(path))
        except (SchemaError, StoreError) as err:
            raise BadDataFile(str(err)) from None
        self._files[session_id] = (key, parsed)
        return parsed

    def _write(self, session_id: str, state: SessionState, rows: dict[str, Row]) -> None:
        self._require_writable()
        self._backup(session_id)
        path = self._path(session_id)
        storage = AtomicJSONStorage(path, max_bytes=MAX_SESSION_FILE_BYTES)
        storage.write(session_file_json(state, rows))
        st = path.stat()
        self._files[session_id] = ((st.st_mtime_ns, st.st_size), SessionFile(2, state, rows))

    def _require_writable(self) -> None:
        if not self.writable:
            raise StoreError("this store was opened read-only")

    def session_ids(self) -> list[str]:
        """Every `*.json` in sessions/, oldest first (a stray file shows up here and is reported when read)."""
        if not self.sessions_dir.exists():
            return []
        files = sorted((p for p in self.sessions_dir.glob("*.json") if not p.name.startswith(".")),
                       key=lambda p: (p.stat().st_mtime, p.name))
        return [p.stem for p in files]

    def readable_session_ids(self) -> list[str]:
        """The session ids whose files read cleanly; a bad one raises unless the store skips bad files."""
        good = []
        for sid in self.session_ids():
            try:
                self._read(sid)
            except BadDataFile as err:
                if not self.skip_bad:
                    raise BadDataFile(f"{err}; move the file away, or add --skip-bad to leave it out") from None
                self.bad_files[sid] = BadFile(self._path(sid), str(err))
                continue
            good.append(sid)
        return good

    # -- session state ------------------------------------------------------------------------
    def create_session(self, state: SessionState) -> str:
        session_id = state.session_id or new_id()
        if self._path(session_id).exists():
            raise StoreError(f"session {session_id} already exists")
        stamp = now_iso()
        state = replace(state.copy(), session_id=session_id, created_at=stamp, updated_at=stamp)
        self._write(session_id, state, {})
        return session_id

    def load_state(self, session_id: str) -> SessionState:
        """A copy of the saved state: the caller may change it freely until it commits."""
        return self._read(session_id).state.copy()

    def commit(
        self,
        session_id: str,
        *,
        state: SessionState | None = None,
        new_rows: Iterable[Row] = (),
        chosen_for_step: tuple[int, Chosen] | None = None,
    ) -> list[str]:
        """Write the session state, new rows and a step's `chosen` in one atomic write.

        `chosen_for_step=(step_index, chosen)` sets `chosen` on every worker row of that step (agent
        rows keep their own). Returns the ids of the new rows.
        """
        current = self._read(session_id)
        stamp = now_iso()
        rows = dict(current.rows)
        next_key = max((int(k) for k in rows), default=0) + 1
        ids = []
        for row in new_rows:
            row = replace(row, row_id=row.row_id or new_id(), session_id=session_id, created_at=stamp,
                          updated_at=stamp, chosen=self._soft_labels_that_spell(row.chosen))
            ids.append(row.row_id)
            rows[str(next_key)] = row
            next_key += 1
        if chosen_for_step is not None:
            step_index, chosen = chosen_for_step
            chosen = self._soft_labels_that_spell(chosen)
            wording = step_wording(state if state is not None else current.state, step_index)
            step_rows = {r.row_id for r in worker_rows_of_step(rows.values(), step_index, wording)}
            rows = {k: (replace(r, chosen=chosen, updated_at=stamp) if r.row_id in step_rows else r)
                    for k, r in rows.items()}
        new_state = replace(state.copy(), updated_at=stamp) if state is not None else current.state
        self._write(session_id, new_state, rows)
        return ids

    def _soft_labels_that_spell(self, chosen: Chosen | None) -> Chosen | None:
        """The chosen as written: soft labels whose token bytes are not exactly its text belong to some other
        text and are refused (the row keeps its hard labels, and the reason is recorded and counted in
        `stats`); so are a reasoning's soft labels that are not exactly its `thinking` (the answer's stay),
        and context labels that are not its text (the others stay). A missing or corrupt blob is left to
        `shake data check`."""
        if chosen is None:
            return chosen
        lp = chosen.logprobs
        reason = self._misspelling(lp.blob if lp else "", chosen.text, "soft labels", "text")
        if reason:
            chosen = replace(chosen, logprobs=None, soft_labels_refused=reason)
        elif lp is not None and lp.thinking_blob:
            reason = self._misspelling(lp.thinking_blob, chosen.thinking, "reasoning's soft labels", "thinking")
            if reason:
                chosen = replace(chosen, logprobs=replace(lp, thinking_blob="", thinking_tokens=0),
                                 soft_labels_refused=reason)
        context = chosen.context_logprobs
        if context is not None and self._misspelling(context.blob, chosen.text, "context soft labels", "text"):
            chosen = replace(chosen, context_logprobs=None)
        return chosen

    def _misspelling(self, blob: str, text: str, labels: str, part: str) -> str:
        """Why the blob's token bytes are not `text` ("" when they are, or when it cannot be read)."""
        if not blob:
            return ""
        try:
            arrays = self.get_logprobs(blob)
        except StoreError:
            return ""
        if arrays.spells(text):
            return ""
        got = b"".join(arrays.token_bytes)
        return (f"the {len(arrays)} tokens of the {labels} spell {len(got)} bytes that are not the chosen's "
                f"{len(text.encode('utf-8'))}-byte {part}")

    def set_excluded(self, row_ids: Iterable[str], excluded: bool, reason: str = "") -> int:
        """Leave rows out of training and export (or bring them back); nothing is deleted. Returns how
        many rows changed."""
        wanted = set(row_ids)
        changed = 0
        found: set[str] = set()
        stamp = now_iso()
        for sid in self.readable_session_ids():
            current = self._read(sid)
            rows = {}
            touched = False
            for key, row in current.rows.items():
                if row.row_id in wanted:
                    found.add(row.row_id)
                    if (row.excluded is not None) != excluded:
                        row = replace(row, excluded=Exclusion(reason or "excluded by the user", stamp) if excluded
                                      else None, updated_at=stamp)
                        changed += 1
                        touched = True
                rows[key] = row
            if touched:
                self._write(sid, current.state, rows)
        missing = wanted - found
        if missing:
            raise StoreError(f"no row with id {', '.join(sorted(missing))} in {self.data_dir}")
        return changed

    def map_rows(self, session_id: str, change: Callable[[Row], Row]) -> int:
        """Rewrite a session's rows through `change` (repairs); one atomic write if any changed."""
        current = self._read(session_id)
        rows = {key: change(row) for key, row in current.rows.items()}
        changed = sum(1 for key in rows if rows[key] is not current.rows[key])
        if changed:
            self._write(session_id, current.state, rows)
        return changed

    def restore(self, session_id: str, file: SessionFile) -> None:
        """Write a session rebuilt from a damaged file (`salvage.py`) where its file was; the damaged
        one must have been set aside first (a file that reads is never replaced by this)."""
        if self._path(session_id).exists():
            raise StoreError(f"{self._path(session_id)} is still there; set it aside before restoring the session")
        self._write(session_id, file.state, file.rows)

    def set_aside(self, session_id: str) -> Path:
        """Move a session file that cannot be read to sessions/.bad/, out of every command's way."""
        self._require_writable()
        folder = self.sessions_dir / ".bad"
        folder.mkdir(exist_ok=True)
        target = folder / f"{session_id}.json"
        number = 1
        while target.exists():  # one set aside before is kept too
            number += 1
            target = folder / f"{session_id}.json.{number}"
        self._path(session_id).replace(target)
        self._files.pop(session_id, None)
        return target

    # -- rows ---------------------------------------------------------------------------------
    def rows(self, session_id: str | None = None) -> Iterator[Row]:
        ids = [session_id] if session_id else self.readable_session_ids()
        for sid in ids:
            yield from self._read(sid).rows.values()

    def worker_rows(self, session_id: str, step_index: int) -> list[Row]:
        stored = self._read(session_id)
        return worker_rows_of_step(stored.rows.values(), step_index, step_wording(stored.state, step_index))

    def put_logprobs(self, logprobs: TokenLogprobs) -> str:
        self._require_writable()
        return self.blobs.put(logprobs.to_npz_bytes())

    def get_logprobs(self, digest: str) -> TokenLogprobs:
        return TokenLogprobs.from_npz_bytes(self.blobs.get(digest))

    def stats(self) -> DatasetStats:
        rows = list(self.rows())
        kinds = Counter(r.rejected.kind.value for r in rows if r.rejected)
        chosens = distinct_chosens(rows)
        agents = Counter(r.agent.value for r in rows)
        return DatasetStats(
            sessions=len(self.readable_session_ids()),
            rows=len(rows),
            complete_rows=sum(1 for r in rows if r.chosen),
            pending_rows=sum(1 for r in rows if not r.chosen),
            with_rejected=sum(1 for r in rows if r.rejected),
            with_logprobs=sum(1 for r in rows if r.chosen and r.chosen.logprobs),
            excluded_rows=sum(1 for r in rows if r.excluded),
            soft_labels_refused=sum(1 for c in chosens if c.soft_labels_refused),
            chosen_bytes=sum(len(c.text.encode("utf-8")) for c in chosens),
            labelled_bytes=sum(self._labelled_bytes(c) for c in chosens),
            by_kind={k: kinds.get(k, 0) for k in REJECTED_KINDS},
            by_agent=dict(sorted(agents.items())),
        )

    def _labelled_bytes(self, chosen: Chosen) -> int:
        if chosen.logprobs is None:
            return 0
        try:
            return self.get_logprobs(chosen.logprobs.blob).labelled_bytes()
        except (StoreError, OSError, ValueError, KeyError):
            return 0  # `shake data check` names the blob

    # -- snapshot for training ----------------------------------------------------------------
    def snapshot(self, dest: Path) -> SnapshotInfo:
        """Freeze the trainable rows (a `chosen`, not excluded) and their blobs into `dest`.

        The snapshot is a JSONL file in a stable order plus a copy of every referenced blob; its
        SHA-256 names exactly this data, so a resumed run can prove it reads the same rows.
        """
        dest = Path(dest)
        (dest / "blobs").mkdir(parents=True, exist_ok=True)
        everything = list(self.rows())
        rows = sorted((r for r in everything if r.trainable),
                      key=lambda r: (r.session_id, r.step_index, r.created_at, r.row_id))
        lines = []
        for row in rows:
            lines.append(json.dumps(row.to_json(), sort_keys=True, ensure_ascii=False, allow_nan=False))
            records = (row.chosen.logprobs, row.chosen.context_logprobs)
            for blob in (b for lp in records if lp for b in (lp.blob, lp.thinking_blob)):
                target = dest / "blobs" / f"{blob}.npz"
                if blob and not target.exists():
                    try:
                        shutil.copyfile(self.blobs.path_for(blob), target)
                    except FileNotFoundError:
                        raise StoreError(f"session {row.session_id} row {row.row_id}: its log-probability blob "
                                         f"{blob} is missing; run `shake data check --fix`") from None
        body = ("\n".join(lines) + "\n") if lines else ""
        atomic_write_text(dest / "rows.jsonl", body)
        sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
        atomic_write_text(dest / "SHA256", sha + "\n")
        excluded = sum(1 for r in everything if r.chosen and r.excluded)
        return SnapshotInfo(dest / "rows.jsonl", sha, len(rows), excluded, list(self.bad_files.values()))


class Snapshot:
    """Read side of `DatasetStore.snapshot`: what the trainer consumes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        path = self.root / "rows.jsonl"
        if not path.exists():
            raise StoreError(f"no dataset snapshot at {self.root}")
        body = path.read_bytes()
        self.sha256 = hashlib.sha256(body).hexdigest()
        expected = (self.root / "SHA256").read_text().strip() if (self.root / "SHA256").exists() else self.sha256
        if expected != self.sha256:
            raise StoreError(f"snapshot {self.root} was modified after it was taken (hash mismatch)")
        self.rows: list[Row] = []
        for n, line in enumerate(body.decode("utf-8").splitlines(), 1):
            if line:
                try:
                    self.rows.append(Row.from_json(json.loads(line), f"{path.name} line {n}"))
                except (SchemaError, ValueError) as err:
                    raise BadDataFile(f"{path}: {err}") from None

    def logprobs(self, row: Row, *, context: bool = False) -> TokenLogprobs | None:
        """The chosen's soft labels: under the row's prompt, or (`context`) under the cycle that produced it."""
        lp = (row.chosen.context_logprobs if context else row.chosen.logprobs) if row.chosen else None
        if not lp:
            return None
        data = (self.root / "blobs" / f"{lp.blob}.npz").read_bytes()
        if hashlib.sha256(data).hexdigest() != lp.blob:
            raise StoreError(f"snapshot blob {lp.blob} is corrupt")
        return TokenLogprobs.from_npz_bytes(data)
