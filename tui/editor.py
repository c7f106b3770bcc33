"""The proposal in the user's editor, with the app suspended while the editor owns the terminal.

Where the app cannot suspend (headless, in tests), the editor runs without the terminal: a scripted
editor still works there, an interactive one would not.
"""

from __future__ import annotations

import subprocess

from textual.app import SuspendNotSupported

from engine.editor import EditResult, edit_in_editor


def edit_text(app, text: str, *, name: str = "script.py") -> EditResult:
    terminal = getattr(app, "terminal", None)  # descriptor 2 goes to the app's log (see tui/terminal.py)

    def run(command: list[str]) -> int:
        try:
            with app.suspend():
                return subprocess.call(command, stderr=terminal)
        except SuspendNotSupported:
            return subprocess.call(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)

    return edit_in_editor(text, name=name, run=run)
