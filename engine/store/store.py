"""The DORPO dataset and the session state, on disk.

Layout of the data directory::

    .lock                       held by the one process that may write
    sessions/<session_id>.json  a TinyDB file: table "state" (one document) and table "rows"
    blobs/<ab>/<sha256>.npz     token log-probabilities, content-addressed, written once

Rows are sharded by session: an insert rewrites only its own session's file, so appending a row costs
the same whether the dataset holds a hundred rows or a hundred thousand. Log-probability arrays live in
blobs outside the JSON, and every write is atomic (see `atomic.py`).

A row (JSON)::

    row_id, session_id, step_index, step, cycle, created_at, updated_at
    prompt:   {messages: [chat messages sent to the worker in the step's first cycle], instruction, script}
    rejected: null | {kind: error|redo|further_edit, text, reasoning, script, error, feedback,
                      teacher: {...identity}, sampling: {...}, cycle, created_at}
    chosen:   null | {text, reasoning, script, teacher, sampling, cycle, created_at,
                      logprobs: null | {blob, n_tokens, k, has_ids, source}}
    agent:    absent for the worker's rows; "planner" | "lead" | "analyzer" for side-chain rows, whose
              prompt is that agent's messages and whose chosen is the teacher's answer the engine used
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tinydb import TinyDB

from engine.errors import StoreError, StoreLocked
from engine.logprobs import TokenLogprobs
from engine.store.atomic import AtomicJSONStorage, atomic_write_bytes, atomic_write_text

REJECTED_KINDS = ("error", "redo", "further_edit", "student")
BACKUPS_KEPT = 3  # rotating copies of each session file, in sessions/.backups/
BACKUP_EVERY = 50  # writes to a session file between backups (and one before its first write)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class DatasetStats:
    sessions: int
    rows: int
    complete_rows: int  # rows with a chosen (trainable)
    pending_rows: int  # rejected rows whose step is not accepted yet
    with_rejected: int
    with_logprobs: int
    by_kind: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class SnapshotInfo:
    path: Path
    sha256: str
    rows: int


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
    """One data directory. Open with `writable=True` (the default) from exactly one process."""

    def __init__(self, data_dir: Path, *, writable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.writable = writable
        self.sessions_dir = self.data_dir / "sessions"
        self.blobs = BlobStore(self.data_dir / "blobs")
        self._dbs: dict[str, TinyDB] = {}
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
        elif not self.data_dir.exists():
            raise StoreError(f"no dataset at {self.data_dir} (set SHAKE_DATA or run a session first)")

    # -- process lock -------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        path = self.data_dir / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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
        source = self.sessions_dir / f"{session_id}.json"
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
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> DatasetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shards -------------------------------------------------------------------------------
    def _db(self, session_id: str) -> TinyDB:
        if session_id not in self._dbs:
            if not session_id or "/" in session_id or session_id.startswith("."):
                raise StoreError(f"bad session id {session_id!r}")
            self._dbs[session_id] = TinyDB(self.sessions_dir / f"{session_id}.json", storage=AtomicJSONStorage)
        return self._dbs[session_id]

    def _require_writable(self) -> None:
        if not self.writable:
            raise StoreError("this store was opened read-only")

    def _transaction(self, session_id: str, mutate) -> Any:
        """Apply `mutate(data)` to the shard's raw TinyDB document and write it once, atomically."""
        self._require_writable()
        self._backup(session_id)
        db = self._db(session_id)
        data = db.storage.read() or {}
        data.setdefault("state", {})
        data.setdefault("rows", {})
        result = mutate(data)
        db.storage.write(data)
        db.clear_cache()
        return result

    def session_ids(self) -> list[str]:
        if not self.sessions_dir.exists():
            return []
        files = sorted((p for p in self.sessions_dir.glob("*.json") if not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]

    # -- session state ------------------------------------------------------------------------
    def create_session(self, state: dict[str, Any]) -> str:
        session_id = state.get("session_id") or new_id()
        if (self.sessions_dir / f"{session_id}.json").exists():
            raise StoreError(f"session {session_id} already exists")
        state = {**state, "session_id": session_id, "created_at": now_iso(), "updated_at": now_iso()}

        def mutate(data: dict) -> None:
            data["state"] = {"1": state}

        self._transaction(session_id, mutate)
        return session_id

    def load_state(self, session_id: str) -> dict[str, Any]:
        if not (self.sessions_dir / f"{session_id}.json").exists():
            known = ", ".join(self.session_ids()[-5:]) or "none"
            raise StoreError(f"no session '{session_id}' in {self.data_dir} (recent: {known})")
        data = self._db(session_id).storage.read() or {}
        state = data.get("state", {}).get("1")
        if state is None:
            raise StoreError(f"session {session_id} has no state document")
        return state

    def commit(
        self,
        session_id: str,
        *,
        state: dict[str, Any] | None = None,
        new_rows: list[dict[str, Any]] = (),
        chosen_for_step: tuple[int, dict[str, Any]] | None = None,
    ) -> list[str]:
        """Write the session state, new rows and a step's `chosen` in one atomic write.

        `chosen_for_step=(step_index, chosen)` fills `chosen` into every row of that step; if the step
        has no rows yet (no error, Redo or Further edit happened), the caller passes the one row with
        an empty `rejected` in `new_rows`. Returns the ids of the new rows.
        """
        stamp = now_iso()
        ids = []

        def mutate(data: dict) -> None:
            rows = data["rows"]
            next_id = max((int(k) for k in rows), default=0) + 1
            for row in new_rows:
                row = {**row, "row_id": row.get("row_id") or new_id(), "session_id": session_id,
                       "created_at": stamp, "updated_at": stamp}
                ids.append(row["row_id"])
                rows[str(next_id)] = row
                next_id += 1
            if chosen_for_step is not None:
                step_index, chosen = chosen_for_step
                for row in rows.values():
                    # side-chain rows of the planner, lead and analyzer carry their own chosen
                    if row["step_index"] == step_index and row.get("agent", "worker") == "worker":
                        row["chosen"] = chosen
                        row["updated_at"] = stamp
            if state is not None:
                data["state"] = {"1": {**state, "updated_at": stamp}}

        self._transaction(session_id, mutate)
        return ids

    # -- rows ---------------------------------------------------------------------------------
    def rows(self, session_id: str | None = None) -> Iterator[dict[str, Any]]:
        ids = [session_id] if session_id else self.session_ids()
        for sid in ids:
            data = self._db(sid).storage.read() or {}
            for key in sorted(data.get("rows", {}), key=int):
                yield data["rows"][key]

    def put_logprobs(self, logprobs: TokenLogprobs) -> str:
        self._require_writable()
        return self.blobs.put(logprobs.to_npz_bytes())

    def get_logprobs(self, digest: str) -> TokenLogprobs:
        return TokenLogprobs.from_npz_bytes(self.blobs.get(digest))

    def stats(self) -> DatasetStats:
        rows = list(self.rows())
        kinds = Counter(r["rejected"]["kind"] for r in rows if r.get("rejected"))
        return DatasetStats(
            sessions=len(self.session_ids()),
            rows=len(rows),
            complete_rows=sum(1 for r in rows if r.get("chosen")),
            pending_rows=sum(1 for r in rows if not r.get("chosen")),
            with_rejected=sum(1 for r in rows if r.get("rejected")),
            with_logprobs=sum(1 for r in rows if r.get("chosen") and r["chosen"].get("logprobs")),
            by_kind={k: kinds.get(k, 0) for k in REJECTED_KINDS},
        )

    # -- snapshot for training ----------------------------------------------------------------
    def snapshot(self, dest: Path) -> SnapshotInfo:
        """Freeze the trainable rows (those with a `chosen`) and their blobs into `dest`.

        The snapshot is a JSONL file in a stable order plus a copy of every referenced blob; its
        SHA-256 names exactly this data, so a resumed run can prove it reads the same rows.
        """
        dest = Path(dest)
        (dest / "blobs").mkdir(parents=True, exist_ok=True)
        rows = sorted(
            (r for r in self.rows() if r.get("chosen")),
            key=lambda r: (r["session_id"], r["step_index"], r["created_at"], r["row_id"]),
        )
        lines = []
        for row in rows:
            lines.append(json.dumps(row, sort_keys=True, ensure_ascii=False, allow_nan=False))
            lp = row["chosen"].get("logprobs")
            if lp:
                target = dest / "blobs" / f"{lp['blob']}.npz"
                if not target.exists():
                    shutil.copyfile(self.blobs.path_for(lp["blob"]), target)
        body = ("\n".join(lines) + "\n") if lines else ""
        atomic_write_text(dest / "rows.jsonl", body)
        sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
        atomic_write_text(dest / "SHA256", sha + "\n")
        return SnapshotInfo(dest / "rows.jsonl", sha, len(rows))


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
        self.rows: list[dict[str, Any]] = [json.loads(line) for line in body.decode("utf-8").splitlines() if line]

    def logprobs(self, row: dict[str, Any]) -> TokenLogprobs | None:
        lp = (row.get("chosen") or {}).get("logprobs")
        if not lp:
            return None
        data = (self.root / "blobs" / f"{lp['blob']}.npz").read_bytes()
        if hashlib.sha256(data).hexdigest() != lp["blob"]:
            raise StoreError(f"snapshot blob {lp['blob']} is corrupt")
        return TokenLogprobs.from_npz_bytes(data)
