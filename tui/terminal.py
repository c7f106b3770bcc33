"""Keep the app's screen its own while C libraries write to (or silence) the process's stderr.

Why: Textual draws the app by writing to file descriptor 2. llama-cpp-python loads a model inside
`suppress_stdout_stderr`, which points descriptors 1 and 2 at /dev/null for the whole process while
the load runs (the health check does this in the background at every start): every frame drawn
meanwhile vanished, which is how "on 1 launch in 4 the top 40 rows stayed blank until a key was
pressed" happened. Other native code (ggml, CUDA) writes its warnings to descriptor 2 and into the
middle of the screen.

So for the app's lifetime Textual writes to a duplicate of the terminal's descriptor, which no
`dup2` on descriptor 2 can redirect, and descriptor 2 itself goes to `DATA/app.log`, where such
output belongs.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def own_terminal(log_path: Path) -> Iterator[IO[str] | None]:
    """Yields a text file on the terminal for the driver to draw on (None where descriptor 2 is not a
    terminal: nothing to protect); descriptor 2 goes to `log_path` until the block ends."""
    log_fd = _open_log(log_path) if _is_terminal(2) else None
    if log_fd is None:
        yield None
        return
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    terminal = os.fdopen(terminal_fd, "w", encoding=getattr(sys.__stderr__, "encoding", None) or "utf-8",
                         errors="replace")
    try:
        yield terminal
    finally:
        try:
            terminal.flush()
        except OSError:
            pass  # the terminal is gone (tui/hangup.py): nothing left to show
        finally:
            os.dup2(terminal.fileno(), 2)
            terminal.close()


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _open_log(path: Path) -> int | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return None


def driver_for(terminal: IO[str]):
    """Textual's terminal driver, drawing on `terminal` instead of `sys.__stderr__`."""
    if sys.platform == "win32":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    from tui.hangup import DeadTerminalSafe

    class TerminalDriver(LinuxDriver):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._file = DeadTerminalSafe(terminal)

    return TerminalDriver
