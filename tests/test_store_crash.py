"""The dataset survives crashes and failing disks.

Kill test: a forked writer grows and shrinks a session file and acknowledges each commit on a pipe;
it is SIGKILLed at a random moment, 200 times. After each kill the store opens, holds a whole state
(never half a file), and every acknowledged row is there.
Fault test: a write that fails (no space, I/O error, failed rename) leaves the old files
byte-identical and no temporary file, and the error says so.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import time

import pytest

from engine.errors import StoreError
from engine.store import DatasetStore
from engine.store import atomic as atomic_mod
from records import row as make_row
from records import state as make_state

RUNS = 200


def writer(data_dir, session_id, ack_fd, seed) -> None:
    rng = random.Random(seed)
    store = DatasetStore(data_dir)
    n = 0
    while True:
        # the state document swings between small and large: the file grows and shrinks
        padding = "x" * rng.choice([10, 50_000, 200, 120_000])
        row = make_row(0, "error", text=f"row-{seed}-{n}")
        row = row.__class__(**{**row.__dict__, "cycle": n, "row_id": f"r{seed}-{n}",
                               "step": padding})
        store.commit(session_id, state=make_state(status="working", current_script=padding, request=f"n={n}"),
                     new_rows=[row])
        os.write(ack_fd, f"{seed}-{n}\n".encode())
        n += 1


def test_sigkill_at_random_moments_never_loses_an_acknowledged_row(tmp_path):
    data = tmp_path / "data"
    with DatasetStore(data) as store:
        session_id = store.create_session(make_state(status="working"))
    acknowledged: set[str] = set()
    rng = random.Random(1234)
    for run in range(RUNS):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer
            os.close(read_fd)
            try:
                writer(data, session_id, write_fd, run)
            finally:
                os._exit(0)
        os.close(write_fd)
        received = b""
        if run % 2:  # every other run: kill only once the writer is mid-stream, whatever the machine's load
            while b"\n" not in received:
                chunk = os.read(read_fd, 4096)
                if not chunk:
                    break
                received += chunk
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_fd, "rb") as acks:
            received += acks.read()
        acknowledged |= {f"r{line.strip().decode()}" for line in received.splitlines() if line.strip()}
        with DatasetStore(data) as store:  # opens: the lock died with the writer
            state = store.load_state(session_id)
            rows = {r.row_id for r in store.rows(session_id)}
            assert acknowledged <= rows, f"run {run}: lost {sorted(acknowledged - rows)[:3]}"
            assert state.status == "working"
            if state.request.startswith("n="):
                assert len(state.current_script) in (10, 50_000, 200, 120_000)
        leftovers = [p.name for p in (data / "sessions").iterdir() if p.name.endswith(".tmp")]
        assert leftovers == [], leftovers  # swept when the store opened
    assert len(acknowledged) >= RUNS // 2  # the writers did real work between kills


@pytest.mark.parametrize(
    "fault",
    ["write", "fsync", "replace"],
)
def test_failing_disk_leaves_old_files_identical(tmp_path, monkeypatch, fault):
    data = tmp_path / "data"
    with DatasetStore(data) as store:
        sid = store.create_session(make_state(status="working"))
        store.commit(sid, new_rows=[make_row(0, "error", text="old")])
        shard = data / "sessions" / f"{sid}.json"
        before = shard.read_bytes()
        files_before = sorted(p.name for p in (data / "sessions").iterdir())

        if fault == "write":
            real_fdopen = os.fdopen

            class Full:
                def __init__(self, f):
                    self.f = f

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    self.f.close()

                def write(self, data):
                    raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(atomic_mod.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
        elif fault == "fsync":
            monkeypatch.setattr(atomic_mod.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")))
        else:
            monkeypatch.setattr(atomic_mod.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EXDEV, "rename failed")))

        with pytest.raises(StoreError, match="previous version is intact"):
            store.commit(sid, new_rows=[make_row(0, "redo", text="new")])
        monkeypatch.undo()
        assert shard.read_bytes() == before
        assert sorted(p.name for p in (data / "sessions").iterdir()) == files_before
        # the store's cache did not run ahead of the disk
        assert [r.rejected.text for r in store.rows(sid)] == ["old"]


def test_rotating_backups_of_session_files(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.store.store.BACKUP_EVERY", 2)
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(make_state(status="working"))
        for i in range(10):
            store.commit(sid, state=make_state(status="working", request=f"i={i}"))
    backups = sorted(p.name for p in (tmp_path / "sessions" / ".backups").iterdir())
    assert backups == [f"{sid}.json.1", f"{sid}.json.2", f"{sid}.json.3"]
    with DatasetStore(tmp_path) as store:
        assert store.session_ids() == [sid]  # backups are not sessions
