"""Run directories on the host (`sandbox = "none"` only), their removal, and the sweep of stale ones.

A sandboxed run keeps nothing on the host: its run directory and /tmp live on a tmpfs inside its
mount namespace, which the kernel frees with the namespace. An unisolated run (`sandbox = "none"`)
needs a host directory, `shake-run-*` in the system temporary directory; it holds a lock file, locked
for as long as its engine runs it, so that a later engine can tell a directory left by one that was
killed (lock free) from one in use (lock held) and remove only the first kind.

`remove_tree` never raises: a script may leave a tree 1,500 levels deep (where `shutil.rmtree`
recurses into RecursionError), directories without permissions, or a million files; every problem
becomes a sentence for the log, and the walk keeps one directory descriptor open at a time.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path

PREFIX = "shake-run-"
LOCK_NAME = ".shake-run.lock"
LEGACY_AGE_S = 2 * 3600  # directories without a lock (older versions): older than any run can last


class RunDir:
    """A host run directory, locked while in use; `close()` removes it and never raises."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX))
        self._lock = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def close(self) -> str | None:
        problem = remove_tree(self.path)
        os.close(self._lock)
        return problem


def remove_tree(path: Path | str) -> str | None:
    """Remove a directory tree without recursion and without following symlinks; the problem, or None."""
    path = str(path)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"could not open {path} to remove it: {err.strerror}"
    names: list[str] = []  # the way down from `path` to the directory `fd` is
    problems: list[str] = []
    try:
        while True:
            subdir = None
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            subdir = subdir or entry.name
                        else:
                            try:
                                os.unlink(entry.name, dir_fd=fd)
                            except FileNotFoundError:
                                pass
            except PermissionError:
                _make_accessible(fd)
                continue
            except OSError as err:
                problems.append(f"{os.path.join(path, *names)}: {err.strerror}")
                subdir = None
            if subdir is not None:
                try:
                    child = os.open(subdir, flags, dir_fd=fd)
                except PermissionError:
                    os.chmod(subdir, 0o700, dir_fd=fd, follow_symlinks=False)
                    child = os.open(subdir, flags, dir_fd=fd)
                os.close(fd)
                fd, names = child, names + [subdir]
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            try:
                os.rmdir(names.pop(), dir_fd=fd)
            except OSError as err:  # not empty after an error inside: give up on this branch
                problems.append(f"{os.path.join(path, *names)}: {err.strerror}")
                break
    except OSError as err:
        problems.append(f"{os.path.join(path, *names)}: {err.strerror}")
    finally:
        os.close(fd)
    if not problems:
        try:
            os.rmdir(path)
        except OSError as err:
            problems.append(f"{path}: {err.strerror}")
    if problems:
        return f"could not remove all of {path} ({len(problems)} problem(s), first: {problems[0]})"
    return None


def _make_accessible(fd: int) -> None:
    """A directory the script made unreadable: give its owner (us) access back, once."""
    mode = os.fstat(fd).st_mode
    if stat.S_IMODE(mode) & 0o700 == 0o700:
        raise PermissionError(13, "permission denied even with owner access")
    os.fchmod(fd, 0o700)


def sweep(tmp_dir: str | None = None) -> list[str]:
    """Remove run directories whose engine is gone; what could not be removed, in words."""
    tmp_dir = tmp_dir or tempfile.gettempdir()
    problems = []
    try:
        candidates = [e for e in os.scandir(tmp_dir) if e.name.startswith(PREFIX) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for entry in candidates:
        if _in_use(entry):
            continue
        if problem := remove_tree(entry.path):
            problems.append(problem)
    return problems


def _in_use(entry: os.DirEntry) -> bool:
    try:
        lock = os.open(os.path.join(entry.path, LOCK_NAME), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:  # made by an older version: judge by age
        try:
            return time.time() - entry.stat(follow_symlinks=False).st_mtime < LEGACY_AGE_S
        except OSError:
            return True
    except OSError:
        return True
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False  # nobody holds it: its engine is gone (we hold it until the removal closes it)
    except OSError:
        return True
    finally:
        os.close(lock)
