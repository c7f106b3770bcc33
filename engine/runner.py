"""Run a generated script and report what happened.

Each run gets a fresh temporary directory (its working directory and $HOME), stdin from /dev/null,
a cleared environment, rlimits on address space, CPU time, file size, open files and core dumps,
a wall-clock timeout, and stdout/stderr each cut at a cap (the rest is read and dropped, so a
chatty script cannot block on a full pipe nor fill memory).

The script runs under bubblewrap (`engine/sandbox.py`: no network, read-only system, a private
run directory, its own PID namespace and session) and, inside it, under a small launcher
(`engine/_launcher.py`) that applies the rlimits, drops root to `nobody`, makes itself a child
subreaper (descendants that double-fork or call `setsid` stay its descendants) and kills whatever
the script leaves behind. `[runner] sandbox = "none"` runs the launcher without bubblewrap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from engine import sandbox
from engine.config import RunnerConfig

LAUNCHER = Path(__file__).with_name("_launcher.py")


@dataclass
class RunResult:
    exit_code: int | None  # None when killed by the timeout
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def error_text(self, limit: int = 4000) -> str:
        """What the lead is told when the run failed: the end of stderr, where the traceback is."""
        if self.timed_out:
            return f"The script did not finish within the time limit ({self.duration_s:.1f} s) and was stopped."
        tail = self.stderr.strip()[-limit:] or self.stdout.strip()[-limit:]
        return f"Exit code {self.exit_code}.\n{tail}"

    def as_dict(self) -> dict:
        return asdict(self)

    def log(self) -> str:
        status = "timed out" if self.timed_out else f"exit code {self.exit_code}"
        lines = [f"$ python script.py   # {status}, {self.duration_s:.2f} s"]
        if self.stdout:
            lines += ["--- stdout ---", self.stdout.rstrip("\n") + (" [... cut]" if self.stdout_truncated else "")]
        if self.stderr:
            lines += ["--- stderr ---", self.stderr.rstrip("\n") + (" [... cut]" if self.stderr_truncated else "")]
        return "\n".join(lines)


def _drain(stream, cap: int, sink: list[bytes], flags: list[bool]) -> None:
    kept = 0
    while chunk := stream.read(65536):
        if kept < cap:
            take = chunk[: cap - kept]
            sink.append(take)
            kept += len(take)
            if len(take) < len(chunk):
                flags[0] = True
        else:
            flags[0] = True
    stream.close()


def check_syntax(script: str) -> str | None:
    """A SyntaxError as the interpreter would print it, or None. Costs no process."""
    try:
        compile(script, "script.py", "exec")
    except SyntaxError as err:
        line = (err.text or "").rstrip("\n")
        caret = " " * max((err.offset or 1) - 1, 0) + "^" if line else ""
        return f'  File "script.py", line {err.lineno}\n    {line}\n    {caret}\nSyntaxError: {err.msg}'
    except ValueError as err:  # e.g. null bytes
        return f"SyntaxError: {err}"
    return None


def run_script(script: str, config: RunnerConfig, *, cancel: threading.Event | None = None) -> RunResult:
    syntax = check_syntax(script)
    if syntax is not None:
        return RunResult(exit_code=1, stdout="", stderr=syntax, duration_s=0.0, timed_out=False)
    cap = config.output_cap_kb * 1024
    isolated = config.sandbox == "bwrap"
    if isolated and (problem := sandbox.probe()) is not None:
        raise sandbox.SandboxUnavailable(problem)
    with tempfile.TemporaryDirectory(prefix="shake-run-") as workdir:
        path = Path(workdir) / "script.py"
        path.write_text(script, encoding="utf-8")
        limits = ",".join(str(v) for v in (
            config.memory_mb * 1024 * 1024, config.cpu_s, config.file_size_mb * 1024 * 1024,
            config.open_files, _process_limit(config.max_processes),
        ))
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "SHAKE_RLIMITS": limits,
        }
        if isolated:
            env.update(HOME=sandbox.RUN_DIR, TMPDIR="/tmp")
            if sandbox.privileged():
                env["SHAKE_DROP_UID"] = str(sandbox.NOBODY)
                os.chmod(workdir, 0o777)  # the script runs as nobody and writes here
            command = sandbox.bwrap_args(Path(workdir), LAUNCHER, env) + [
                sys.executable, "-I", sandbox.LAUNCHER_IN, sys.executable, f"{sandbox.RUN_DIR}/script.py"]
        else:
            env.update(HOME=workdir, TMPDIR=workdir)
            command = [sys.executable, "-I", str(LAUNCHER), sys.executable, str(path)]
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out: list[bytes] = []
        err: list[bytes] = []
        out_cut, err_cut = [False], [False]
        readers = [
            threading.Thread(target=_drain, args=(proc.stdout, cap, out, out_cut), daemon=True),
            threading.Thread(target=_drain, args=(proc.stderr, cap, err, err_cut), daemon=True),
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        deadline = started + config.timeout_s
        while proc.poll() is None:
            if time.perf_counter() >= deadline or (cancel is not None and cancel.is_set()):
                timed_out = True
                # The launcher kills its whole tree on SIGTERM; the group kill covers a stuck launcher.
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
            time.sleep(0.01)
        _signal_group(proc.pid, signal.SIGKILL)
        for reader in readers:
            reader.join(timeout=5)
        duration = time.perf_counter() - started
        code = proc.returncode
        return RunResult(
            exit_code=None if timed_out else (code if code >= 0 else 128 - code),
            stdout=b"".join(out).decode("utf-8", errors="replace"),
            stderr=b"".join(err).decode("utf-8", errors="replace"),
            duration_s=duration,
            timed_out=timed_out,
            stdout_truncated=out_cut[0],
            stderr_truncated=err_cut[0],
        )


def _process_limit(allowance: int) -> int:
    """RLIMIT_NPROC counts every process of the user: allow the ones it has plus `allowance`."""
    if sandbox.privileged():
        return allowance  # the script runs as nobody, who has no other processes
    uid = os.getuid()
    mine = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                mine += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return mine + allowance


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
