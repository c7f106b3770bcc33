"""Open a text in the user's editor ($VISUAL, else $EDITOR) and read back what they saved.

The app suspends itself while the editor owns the terminal (Textual's `App.suspend`). Where the
app cannot suspend (headless, in tests), the editor runs without the terminal: a scripted editor
still works, an interactive one would not, which is why the app says which editor it runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textual.app import SuspendNotSupported

from engine.errors import InputError

FALLBACKS = ("nano", "vi")


def editor_command() -> list[str]:
    """The user's editor as an argument list; nano or vi when neither variable is set."""
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return shlex.split(value)
            except ValueError as err:
                raise InputError(f"${var} ({value!r}) cannot be parsed: {err}") from None
    for name in FALLBACKS:
        if shutil.which(name):
            return [name]
    raise InputError("set $EDITOR (or $VISUAL) to the editor to open scripts in")


@dataclass(frozen=True)
class EditResult:
    text: str
    changed: bool


def edit_text(app, text: str, *, name: str = "script.py") -> EditResult:
    """Run the editor on a temporary copy of `text`; what the user saved comes back."""
    command = editor_command()
    if not shutil.which(command[0]):
        raise InputError(f"the editor {command[0]!r} (from $VISUAL/$EDITOR) is not installed")
    with tempfile.TemporaryDirectory(prefix="shake-edit-") as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        try:
            with app.suspend():
                code = subprocess.call([*command, str(path)])
        except SuspendNotSupported:
            code = subprocess.call([*command, str(path)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if code != 0:
            raise InputError(f"the editor {command[0]!r} exited with status {code}; nothing was taken from it")
        try:
            edited = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError("the edited script is not UTF-8 text") from None
    return EditResult(edited, edited != text)
