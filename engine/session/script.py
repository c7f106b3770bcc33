"""The user's script: read once, checked, and compared."""

from __future__ import annotations

import difflib
from pathlib import Path

from engine.errors import InputError

MAX_SCRIPT_BYTES = 200_000


def unified_diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "current/script.py", "proposed/script.py"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def read_script(path: Path) -> str:
    path = Path(path)
    if not path.exists():
        raise InputError(f"no script at {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a Python file")
    data = path.read_bytes()
    if len(data) > MAX_SCRIPT_BYTES:
        raise InputError(f"{path} is {len(data)} bytes; scripts up to {MAX_SCRIPT_BYTES} bytes are supported")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    try:
        compile(text, str(path), "exec")
    except SyntaxError as err:
        raise InputError(
            f"{path} does not parse (line {err.lineno}: {err.msg}); fix the syntax error first, "
            "the engine needs a script that runs as its starting point"
        ) from None
    return text if text.endswith("\n") or not text else text + "\n"
