"""Saving the session's script to disk: the diff against the file, a guard, a backup; several files
(a script and a sibling module) all or none (`save_all`).

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
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError
from engine.store.atomic import fsync_dir


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
    return save_all([plan], backup_dir)[0]


def save_all(plans: list[SavePlan], backup_dir: Path) -> list[Path | None]:
    """Write several files (a step's script and a sibling module) all or none, each with its backup.

    Every file is checked against its diff first and nothing is written if one went stale; then each
    previous file is backed up, each new text is written to a temporary file beside its target, and
    only then are the temporary files renamed over their targets. If a rename fails, the files
    already replaced get their backups back (a new file is removed again): no save leaves half a
    change on disk."""
    if len({p.target.resolve() for p in plans}) != len(plans):
        raise InputError("the same file is named twice in one save; nothing was saved")
    for plan in plans:
        if read_text_or_none(plan.target) != plan.on_disk:
            raise InputError(f"{plan.target} changed on disk since the diff was shown; look again before saving")
    stamp = f"{_dt.datetime.now():%Y%m%d-%H%M%S-%f}"
    backups: list[Path | None] = []
    for i, plan in enumerate(plans):
        backup = None
        if plan.on_disk is not None:
            backup_dir.mkdir(parents=True, exist_ok=True)
            name = f"{stamp}-{i}-{plan.target.name}" if len(plans) > 1 else f"{stamp}-{plan.target.name}"
            backup = backup_dir / name
            shutil.copy2(plan.target, backup)
        backups.append(backup)
    staged: list[tuple[Path, str]] = []
    current = plans[0].target if plans else None
    try:
        for plan in plans:
            current = plan.target
            # Written where a symlink points (dotfiles), with the file's own permissions (the
            # temporary file is created 0600).
            real = plan.target.resolve()
            mode = stat.S_IMODE(real.stat().st_mode) if plan.on_disk is not None else 0o644
            fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
            staged.append((real, tmp))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(plan.text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
    except OSError as err:
        _discard(staged)
        raise InputError(f"could not write {current}: {err.strerror}; nothing was saved") from None
    done = 0
    try:
        for real, tmp in staged:
            os.replace(tmp, real)
            done += 1
    except OSError as err:
        for (real, _), backup in zip(staged[:done], backups[:done]):
            if backup is not None:
                shutil.copy2(backup, real)
            else:
                real.unlink(missing_ok=True)
        _discard(staged[done:])
        raise InputError(f"could not replace {staged[done][0]}: {err.strerror}; the files already replaced got "
                         "their backups back, nothing was saved") from None
    for directory in {real.parent for real, _ in staged}:
        fsync_dir(directory)
    return backups


def _discard(staged: list[tuple[Path, str]]) -> None:
    for _, tmp in staged:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
