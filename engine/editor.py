"""The user's editor ($VISUAL, else $EDITOR) on a temporary copy of a text; what they saved comes back.

Used by `shake session --edit` and by the app (which suspends itself while the editor owns the
terminal). The caller decides what an edit means; here it is only text in, text out.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.errors import InputError

FALLBACKS = ("nano", "vi")


def editor_command() -> list[str]:
    """The user's editor as an argument list; nano or vi when neither variable is set."""
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                command = shlex.split(value)
            except ValueError as err:
                raise InputError(f"${var} ({value!r}) cannot be parsed: {err}") from None
            if not shutil.which(command[0]):
                raise InputError(f"the editor {command[0]!r} (from ${var}) is not installed")
            return command
    for name in FALLBACKS:
        if shutil.which(name):
            return [name]
    raise InputError("set $EDITOR (or $VISUAL) to the editor to open scripts in")


@dataclass(frozen=True)
class EditResult:
    text: str
    changed: bool


def edit_in_editor(text: str, *, name: str = "script.py",
                   run: Callable[[list[str]], int] = subprocess.call) -> EditResult:
    """Write `text` to a temporary `name`, run the editor on it (`run(argv)` returns its exit status),
    and read back what was saved. A failing editor or a file that is no longer UTF-8 is an InputError."""
    command = editor_command()
    with tempfile.TemporaryDirectory(prefix="shake-edit-") as tmp:
        path = Path(tmp) / Path(name).name
        path.write_text(text, encoding="utf-8")
        code = run([*command, str(path)])
        if code != 0:
            raise InputError(f"the editor {command[0]!r} exited with status {code}; nothing was taken from it")
        try:
            edited = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError("the edited script is not UTF-8 text; nothing was taken from it") from None
        except FileNotFoundError:
            raise InputError("the editor removed the file; nothing was taken from it") from None
    return EditResult(edited, edited != text)
