"""The terminal going away ends the app: SIGHUP, or a hung-up terminal that nobody signals.

Why both: started directly by a shell, the app gets SIGHUP when its terminal closes. Started by
`make run` in a tmux pane or an ssh session, `make` is the session leader: the kernel sends the
hangup to `make` alone, `make` dies without passing it on, and the app is left on a dead terminal
whose reads return end-of-file at once. Textual's input thread then spins on them (50-95 % CPU) and
the app kept the data directory's lock for as long as nobody killed it. So the app also looks at its
terminal a few times a second (a `poll` with no wait: POLLHUP once the terminal is gone), and its
output file swallows the EIO that writes to a dead terminal raise (Textual's writer thread dies on
the first one, and its queue then blocks the app when the exit's last frame is written).

Either way the app exits as quitting does (the engine's operation cancelled, the session saved as it
stands, the store and its lock closed); a training run it started keeps running, as it does when
the user quits and leaves it.
"""

from __future__ import annotations

import os
import select
from typing import IO

HANGUP_EXIT_CODE = 129  # a shell's code for "ended by SIGHUP" (128 + 1)
POLL_INTERVAL_S = 0.25  # how often the app looks at its terminal
GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


def terminal_gone(fd: int) -> bool:
    """True once the terminal on `fd` has hung up (or the descriptor is no longer open)."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLIN)
        events = poller.poll(0)
    except (OSError, ValueError):
        return True
    return any(mask & GONE for _, mask in events)


class DeadTerminalSafe:
    """The terminal file the driver draws on, minus the EIO of a terminal that is gone: what cannot
    be written is dropped, and `broken` says so."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._file.write(text)
        except OSError:
            self.broken = True
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._file.flush()
        except OSError:
            self.broken = True

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return not self.broken and os.isatty(self._file.fileno())

    def __getattr__(self, name: str):
        return getattr(self._file, name)
