"""Training runs the app starts: launched in their own process group, remembered, found again.

Why remembered: a run takes minutes to hours and outlives the app when the user quits and leaves it
running. The app records the run's directory and process id in `DATA/ui-state.json`; at the next
start it checks that this process is still that run (the command line names the run directory, so
a reused pid is not mistaken for it) and shows it live again. Stopping goes through the run's stop
file, which the trainer checks after every step (a checkpoint is saved; it resumes later).
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.student.runs import RunDir

STATE_KEY = "training"


def shake_command() -> list[str]:
    """`shake` as this interpreter runs it (the console script may not be on PATH)."""
    return [sys.executable, "-m", "tui.cli"]


def default_train_command() -> list[str]:
    return [*shake_command(), "train"]


@dataclass(frozen=True)
class TrainingProcess:
    run_dir: Path
    pid: int
    log: Path
    started_at: str

    @property
    def stop_file(self) -> Path:
        return RunDir(self.run_dir).stop

    def as_state(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state(cls, data: dict) -> TrainingProcess | None:
        try:
            return cls(Path(data["run_dir"]), int(data["pid"]), Path(data["log"]), str(data["started_at"]))
        except (KeyError, TypeError, ValueError):
            return None


class TrainingRun:
    """A run being watched: one this app started (its `Popen` reaps it, so an ended run is never
    mistaken for alive) or one found again from the state file."""

    def __init__(self, record: TrainingProcess, popen: subprocess.Popen | None = None) -> None:
        self.record = record
        self.popen = popen

    @property
    def alive(self) -> bool:
        return is_alive(self.record, self.popen)

    @property
    def exit_code(self) -> int | None:
        """The exit status of a run this app started and that ended; None otherwise."""
        return self.popen.poll() if self.popen is not None else None


def launch(command: list[str], run_dir: Path, log: Path, args: list[str]) -> TrainingRun:
    """Start `command args --stop-file RUN/.stop` in a new session: closing the terminal or quitting the
    app does not take the run with it."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen([*command, *args, "--stop-file", str(RunDir(run_dir).stop)], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    record = TrainingProcess(run_dir, popen.pid, log, _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return TrainingRun(record, popen)


def is_alive(record: TrainingProcess, popen: subprocess.Popen | None = None) -> bool:
    if popen is not None:
        return popen.poll() is None
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the pid was reused
    cmdline = Path(f"/proc/{record.pid}/cmdline")
    if cmdline.exists():  # Linux: make sure the pid still runs this run (pids are reused)
        try:
            return str(record.run_dir) in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
    return True


def remember(ui_state, record: TrainingProcess) -> None:
    ui_state.set(STATE_KEY, record.as_state())


def forget(ui_state) -> None:
    ui_state.set(STATE_KEY, None)


def recall(ui_state) -> TrainingRun | None:
    """The run the app last started, if it is still running."""
    data = ui_state.get(STATE_KEY)
    record = TrainingProcess.from_state(data) if isinstance(data, dict) else None
    if record is None or not is_alive(record):
        return None
    return TrainingRun(record)


def request_stop(record: TrainingProcess) -> None:
    record.stop_file.write_text("stop\n")
