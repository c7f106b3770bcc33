"""Saving the session's script to disk: the diff against the file, a guard, a backup.

Why a guard: a session can run for an hour, and the user may edit the same file in their editor
meanwhile. Writing the session's result over it would silently drop that work, so a save first
compares the file with the script the session started from and says when it changed. Why a backup:
a save replaces a file the user owns; the previous content is kept under DATA/backups/ so that no
save can lose anything.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError
from engine.store.atomic import atomic_write_text


def normalized(text: str) -> str:
    """As the engine reads a script: a final newline added (see `engine.session.read_script`)."""
    return text if text.endswith("\n") or not text else text + "\n"


def read_text_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


@dataclass(frozen=True)
class SavePlan:
    target: Path
    text: str  # what will be written
    on_disk: str | None  # the file as it is now; None when there is no file
    changed_since_start: bool  # the session's own file no longer holds the script it started from

    @property
    def diff(self) -> str:
        before = self.on_disk or ""
        lines = difflib.unified_diff(before.splitlines(keepends=True), self.text.splitlines(keepends=True),
                                     f"on disk/{self.target.name}", f"session/{self.target.name}")
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    @property
    def unchanged(self) -> bool:
        return self.on_disk == self.text


def plan_save(target: Path, text: str, *, session_file: Path, started_from: str) -> SavePlan:
    """What saving `text` to `target` would do. `session_file` and `started_from` are the session's
    script path and the script it read at the start."""
    target = Path(target).expanduser()
    if target.is_dir():
        raise InputError(f"{target} is a directory; give a file name")
    if not target.parent.is_dir():
        raise InputError(f"no directory {target.parent}")
    on_disk = read_text_or_none(target)
    own_file = target.resolve() == Path(session_file).resolve()
    changed = own_file and on_disk is not None and normalized(on_disk) != started_from
    return SavePlan(target, text, on_disk, changed)


def save(plan: SavePlan, backup_dir: Path) -> Path | None:
    """Write the plan, keeping the previous file in `backup_dir`; the backup's path (None when there
    was no file). Refuses when the file changed after the plan was made (the diff shown is stale)."""
    now = read_text_or_none(plan.target)
    if now != plan.on_disk:
        raise InputError(f"{plan.target} changed on disk since the diff was shown; look again before saving")
    backup = None
    if plan.on_disk is not None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / f"{_dt.datetime.now():%Y%m%d-%H%M%S-%f}-{plan.target.name}"
        shutil.copy2(plan.target, backup)
    # Written where a symlink points (dotfiles), with the file's own permissions (the temporary
    # file of an atomic write is created 0600).
    real = plan.target.resolve()
    mode = stat.S_IMODE(real.stat().st_mode) if plan.on_disk is not None else 0o644
    atomic_write_text(real, plan.text)
    os.chmod(real, mode)
    return backup
