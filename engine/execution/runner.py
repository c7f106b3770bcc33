"""Run a generated script and report what happened.

Each run gets stdin from /dev/null, a cleared environment, rlimits on address space, CPU time, file
size, open files and core dumps, a wall-clock timeout, and stdout/stderr each cut at a cap (the rest
is read and dropped, so a chatty script cannot block on a full pipe nor fill memory). What is kept is
sanitized here, once, where it is captured (sanitize.py): a script's output never reaches a terminal
with its control characters.

The script runs under bubblewrap (sandbox.py) and, inside it, under a small launcher (launcher.py)
that caps its tmpfs, limits SysV shared memory, installs the seccomp filter (seccomp.py), applies the
rlimits, drops root to a uid of the run's own, makes itself a child subreaper and kills whatever the
script leaves behind. Each run has its own memory and process cgroup where the kernel allows
(cgroups.py). `[runner] sandbox = "none"` runs the launcher without bubblewrap, in a host directory.

In project mode (`run_script(..., spec=RunSpec)`, project.py) the run is the session's run command in a
read-only copy of the project holding the proposed script, and then, if the run succeeded, the check
command in the same copy: a failing check fails the run (`RunResult.check`), its output is the error.

At the first run of a process, what earlier engines left behind when they were killed (their run
cgroups; unisolated runs' `shake-run-*` directories) is swept away.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from engine.config import RunnerConfig
from engine.execution import cgroups, project, sandbox, scratch, seccomp
from engine.execution.sanitize import sanitize

log = logging.getLogger("shake.runner")
LAUNCHER = sandbox.LAUNCHER
MIB = 1 << 20


@dataclass
class RunResult:
    exit_code: int | None  # None when killed by the timeout
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    memory_exceeded: bool = False  # the run's memory cgroup reached its limit and the kernel ended a process
    command: str = "python script.py"  # what ran, as the log shows it
    check: RunResult | None = None  # project mode: the check command, run after a clean run
    compile_error: bool = False  # the script did not compile: nothing ran, `stderr` is the SyntaxError

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and (self.check is None or self.check.ok)

    def error_text(self, limit: int = 4000) -> str:
        """What the lead is told when the run failed: the end of stderr, where the traceback is; when the
        run was clean and its check failed, the check's output (pytest reports on stdout)."""
        if self.check is not None and not self.check.ok and self.exit_code == 0 and not self.timed_out:
            check = self.check
            if check.timed_out:
                return (f"The script ran, but the check `{check.command}` did not finish within the time limit "
                        f"({check.duration_s:.1f} s) and was stopped.")
            tail = (check.stdout.strip() + "\n" + check.stderr.strip()).strip()[-limit:]
            return f"The script ran, but the check `{check.command}` failed with exit code {check.exit_code}.\n{tail}"
        if self.timed_out:
            return f"The script did not finish within the time limit ({self.duration_s:.1f} s) and was stopped."
        tail = self.stderr.strip()[-limit:] or self.stdout.strip()[-limit:]
        if self.memory_exceeded:
            tail = (tail + "\n" if tail else "") + "The script used more memory than it is allowed and was killed."
        return f"Exit code {self.exit_code}.\n{tail}"

    def as_dict(self) -> dict:
        return asdict(self)

    def log(self) -> str:
        if self.compile_error:  # no process: an exit code and a duration would say something ran
            return "\n".join([f"$ {self.command}   # did not compile: nothing ran", "--- compile error ---",
                              self.stderr.rstrip("\n")])
        status = "timed out" if self.timed_out else f"exit code {self.exit_code}"
        if self.memory_exceeded:
            status += ", memory limit reached"
        lines = [f"$ {self.command}   # {status}, {self.duration_s:.2f} s"]
        if self.stdout:
            lines += ["--- stdout ---", self.stdout.rstrip("\n") + (" [... cut]" if self.stdout_truncated else "")]
        if self.stderr:
            lines += ["--- stderr ---", self.stderr.rstrip("\n") + (" [... cut]" if self.stderr_truncated else "")]
        if self.check is not None:
            lines.append(self.check.log())
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


@functools.lru_cache(maxsize=1)
def sweep_stale() -> list[str]:
    """Once per process: remove what engines that were killed mid-run left behind. Never raises."""
    problems = scratch.sweep()
    try:
        support = cgroups.probe()
        if support.available:
            problems += cgroups.sweep(support)
    except OSError as err:
        problems.append(f"could not sweep old run cgroups: {err}")
    for problem in problems:
        log.warning("sweep: %s", problem)
    return problems


@dataclass(frozen=True)
class _Launch:
    """Everything one run starts with: the command, its environment, and what must be closed after."""

    command: list[str]
    env: dict[str, str]
    cwd: str
    pass_fds: tuple[int, ...] = ()
    block_fd: int | None = None  # write end: releases bubblewrap once the processes are in the cgroup
    group: cgroups.RunGroup | None = None
    run_dir: scratch.RunDir | None = None
    stdin_fd: int | None = None  # project mode: the --stdin file's bytes (else /dev/null)


def _rlimits(config: RunnerConfig, features: sandbox.SandboxFeatures | None) -> list[int]:
    nproc = config.max_processes if features is not None and features.privileged else _process_limit(config.max_processes)
    return [config.memory_mb * MIB, config.cpu_s, config.file_size_mb * MIB, config.open_files, nproc]


def _environment(*, home: str, tmp: str, launch: dict) -> dict[str, str]:
    """The whole environment of a run. The script itself runs `python -I -u` (unbuffered); the Python
    processes it starts (`subprocess.run([sys.executable, ...])`) read PYTHONUNBUFFERED instead, so that
    what they printed before the timeout is in the pipe, not lost in a buffer when the run is killed."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "HOME": home, "TMPDIR": tmp, "SHAKE_LAUNCH": json.dumps(launch)}


def _sandboxed(script: str | None, config: RunnerConfig, *, argv: list[str] | None = None,
               project_dir: str | None = None) -> _Launch:
    """`script` alone: the script by itself in the run directory. `argv` and `project_dir`: project mode."""
    features = sandbox.features()
    uid = sandbox.fresh_uid() if features.privileged else None
    disk = config.disk_mb * MIB
    launch = {
        "python": sys.executable,
        "script": sandbox.SCRIPT_IN if script is not None else None,
        "argv": argv,
        "uid": uid,
        "rlimits": _rlimits(config, features),
        "disk": None if features.inode_caps else {"bytes": disk, "inodes": config.disk_inodes,
                                                   "run_dir": sandbox.RUN_DIR},
        "shm": None if features.shm_limits else {"bytes": config.memory_mb * MIB, "pages": config.memory_mb * MIB // 4096},
        "seccomp": None if features.seccomp else sandbox.SECCOMP_IN,
    }
    env = _environment(home=sandbox.RUN_DIR, tmp="/tmp", launch=launch)
    fds: list[int] = []
    group = block_write = None
    try:
        if script is not None:
            fds.append(sandbox.memfd("shake-script", script.encode("utf-8")))
        seccomp_fd = None
        if not features.seccomp:
            seccomp_fd = sandbox.memfd("shake-seccomp", seccomp.build(seccomp.Policy(deny_shm=features.deny_shm)))
            fds.append(seccomp_fd)
        block_read = None
        if features.cgroup.available:
            try:
                group = cgroups.RunGroup(features.cgroup, memory_bytes=(config.memory_mb + 2 * config.disk_mb) * MIB
                                         + cgroups.OVERHEAD_BYTES, max_pids=config.max_processes + cgroups.OVERHEAD_PIDS)
            except OSError as err:
                raise sandbox.SandboxUnavailable(f"could not make the run's cgroup ({err}); "
                                                 f"{features.cgroup.reason} worked when shake started") from None
            block_read, block_write = os.pipe2(os.O_CLOEXEC)
            fds.append(block_read)
        mounts = sandbox.Mounts(fds[0] if script is not None else None, seccomp_fd, block_read, disk, project_dir)
        command = sandbox.bwrap_args(mounts, env) + [sys.executable, "-I", sandbox.LAUNCHER_IN]
    except BaseException:
        for fd in fds + ([block_write] if block_write is not None else []):
            os.close(fd)
        if group is not None:
            group.close()
        raise
    return _Launch(command, {}, "/", tuple(fds), block_write, group)


def _unisolated(script: str, config: RunnerConfig) -> _Launch:
    run_dir = scratch.RunDir()
    path = run_dir.path / "script.py"
    path.write_text(script, encoding="utf-8")
    launch = {"python": sys.executable, "script": str(path), "uid": None, "rlimits": _rlimits(config, None)}
    env = _environment(home=str(run_dir.path), tmp=str(run_dir.path), launch=launch)
    return _Launch([sys.executable, "-I", str(LAUNCHER)], env, str(run_dir.path), run_dir=run_dir)


def run_script(script: str, config: RunnerConfig, *, cancel: threading.Event | None = None,
               spec: project.RunSpec | None = None) -> RunResult:
    """Run a script alone, or (with `spec`) the session's run and check commands in its project."""
    syntax = check_syntax(script)
    if syntax is not None:
        return RunResult(exit_code=1, stdout="", stderr=syntax, duration_s=0.0, timed_out=False,
                         command=spec.run_text if spec else "python script.py", compile_error=True)
    sweep_stale()
    if spec is not None:
        return _run_in_project(script, spec, config, cancel)
    launch = _sandboxed(script, config) if config.sandbox == "bwrap" else _unisolated(script, config)
    return _run_and_close(launch, config, cancel)


def _run_and_close(launch: _Launch, config: RunnerConfig, cancel: threading.Event | None) -> RunResult:
    try:
        return _run(launch, config, cancel)
    finally:
        for fd in launch.pass_fds + ((launch.block_fd,) if launch.block_fd is not None else ()):
            os.close(fd)
        for cleanup in (launch.group, launch.run_dir):
            if cleanup is not None and (problem := cleanup.close()):
                log.warning("after a run: %s", problem)


def _run_in_project(script: str, spec: project.RunSpec, config: RunnerConfig,
                    cancel: threading.Event | None) -> RunResult:
    """The run command, then the check (after a clean run), in one copy of the project made for this
    run and removed after it: host files only the engine writes, bound read-only into the sandbox."""
    copy = scratch.RunDir()
    stdin_fd = None
    try:
        tree = copy.path / "project"
        project.copy_into(spec, {spec.script: script}, tree)
        if spec.stdin is not None:
            from engine.inputs import read_bytes

            stdin_fd = sandbox.memfd("shake-stdin", read_bytes(Path(spec.stdin), "stdin file", project.MAX_STDIN_BYTES))
        run = _project_command(spec.run, tree, config, cancel, stdin_fd)
        if not run.ok or not spec.check:
            return run
        return replace(run, check=_project_command(spec.check, tree, config, cancel, None))
    finally:
        if stdin_fd is not None:
            os.close(stdin_fd)
        if problem := copy.close():
            log.warning("after a run: %s", problem)


def _project_command(words: tuple[str, ...], tree: Path, config: RunnerConfig, cancel: threading.Event | None,
                     stdin_fd: int | None) -> RunResult:
    # Not -I: the script's directory (python) or the working directory (-m pytest) must be on sys.path
    # for sibling imports; -E -s keep the environment and the user's site out, -B writes no bytecode.
    argv = [sys.executable, "-E", "-s", "-B", "-u", *project.interpreter_args(words)]
    if config.sandbox == "bwrap":
        launch = replace(_sandboxed(None, config, argv=argv, project_dir=str(tree)), stdin_fd=stdin_fd)
    else:
        run_dir = scratch.RunDir()
        settings = {"python": sys.executable, "argv": argv, "uid": None, "rlimits": _rlimits(config, None)}
        env = _environment(home=str(run_dir.path), tmp=str(run_dir.path), launch=settings)
        launch = _Launch([sys.executable, "-I", str(LAUNCHER)], env, str(tree), run_dir=run_dir, stdin_fd=stdin_fd)
    return replace(_run_and_close(launch, config, cancel), command=shlex.join(words))


def _run(launch: _Launch, config: RunnerConfig, cancel: threading.Event | None) -> RunResult:
    cap = config.output_cap_kb * 1024
    started = time.perf_counter()
    if launch.stdin_fd is not None:
        os.lseek(launch.stdin_fd, 0, os.SEEK_SET)
    proc = subprocess.Popen(
        launch.command,
        cwd=launch.cwd,
        env=launch.env,
        stdin=subprocess.DEVNULL if launch.stdin_fd is None else launch.stdin_fd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=launch.pass_fds,
    )
    if launch.block_fd is not None:
        try:
            _enter_group(proc.pid, launch.group)
            os.write(launch.block_fd, b"x")
        except OSError as err:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise sandbox.SandboxUnavailable(f"could not put the run into its cgroup: {err}") from None
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
        stdout=sanitize(b"".join(out).decode("utf-8", errors="replace")),
        stderr=sanitize(b"".join(err).decode("utf-8", errors="replace")),
        duration_s=duration,
        timed_out=timed_out,
        stdout_truncated=out_cut[0],
        stderr_truncated=err_cut[0],
        memory_exceeded=launch.group is not None and launch.group.memory_killed(),
    )


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _enter_group(root: int, group: cgroups.RunGroup) -> None:
    """Put bubblewrap's processes into the run's cgroup while its namespace child waits on the block fd.

    Whatever a process forks after its move starts in the group; bwrap may have forked its child before
    (bwrap's own pid then the child's are moved), and the child forks nothing until it is released."""
    group.add(root)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = _descendants(root)
        if children:
            for pid in children:
                try:
                    group.add(pid)
                except ProcessLookupError:
                    pass
            return
        if _exited(root):
            return  # bwrap failed before its sandbox existed; its stderr says why
        time.sleep(0.001)
    raise OSError("bubblewrap did not start its sandbox within 10 s")


def _descendants(root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        children = _children(frontier.pop())
        found += children
        frontier += children
    return found


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def _process_limit(allowance: int) -> int:
    """RLIMIT_NPROC counts every process of the user: allow the ones it has plus `allowance`."""
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
