"""Crash-safe file writes, and a TinyDB storage built on them.

TinyDB's own `JSONStorage` rewrites its file in place: a kill mid-write leaves half a JSON document.
Here every write goes to a temporary file in the same directory, is flushed and fsync'ed, replaces
the target with `os.replace` (atomic on POSIX), and the directory is fsync'ed so that the rename
itself survives a power cut. A failed write removes its temporary file and leaves the old file
byte-identical.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from engine.errors import StoreError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a read-only or missing directory: nothing was written
        raise StoreError(f"could not write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException as err:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError):
            raise StoreError(f"could not write {path}: {err.strerror or err}; the previous version is intact") from err
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class AtomicJSONStorage(Storage):
    """TinyDB storage: whole-document JSON, written atomically, cached in memory between writes.

    TinyDB mutates the dict that `read()` returns before it calls `write()`; a copy is handed out so
    that a failed write cannot leave the cache ahead of the disk.
    """

    def __init__(self, path: str | Path, *, max_bytes: int | None = None, **_: Any) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes  # a file larger than this is refused unread, and never written
        self._cache: dict | None = None

    def read(self) -> dict | None:
        if self._cache is None:
            if not self.path.exists():
                return None
            try:
                with self.path.open("rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if self.max_bytes is not None and size > self.max_bytes:
                        raise StoreError(f"{self.path} is {size} bytes, over the {self.max_bytes} bytes a file of "
                                         "this kind may hold; it was not written by shake's store")
                    raw = f.read()
            except OSError as err:
                raise StoreError(f"{self.path} cannot be read: {err.strerror or err}") from None
            if not raw.strip():
                return None
            try:
                self._cache = json.loads(raw)
            except ValueError as err:  # not JSON, or not UTF-8
                raise StoreError(f"{self.path} is not valid JSON ({err}); it was not written by shake's store") from None
            except RecursionError:
                raise StoreError(f"{self.path} is nested too deeply to read; it was not written by shake's store") \
                    from None
        return copy.deepcopy(self._cache)

    def write(self, data: dict) -> None:
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError as err:
            raise StoreError(f"refusing to write a non-finite number to {self.path}: {err}") from None
        encoded = text.encode("utf-8")
        if self.max_bytes is not None and len(encoded) > self.max_bytes:
            raise StoreError(f"{self.path} would grow to {len(encoded)} bytes, over the {self.max_bytes} bytes it may "
                             "hold; the previous version is intact (finish this work in a new session)")
        atomic_write_bytes(self.path, encoded)
        self._cache = copy.deepcopy(data)

    def close(self) -> None:
        self._cache = None
