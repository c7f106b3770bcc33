"""Diffs between the session's scripts (reading the user's script is `engine.inputs.read_script`)."""

from __future__ import annotations

import difflib


def unified_diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "current/script.py", "proposed/script.py"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
