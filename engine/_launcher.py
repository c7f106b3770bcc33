"""Launcher for a generated script (run as `python -I _launcher.py PYTHON SCRIPT`).

It applies the rlimits (and, when started as root inside the sandbox, drops to `nobody`), becomes a child subreaper, so that every descendant of the script (even one that double-forks and
calls `setsid`) stays its descendant; it starts the script with rlimits applied, waits for it, and
then kills whatever the script left behind. SIGTERM (the engine's timeout) kills the whole tree.
Standard library only: it runs before anything else is imported.
"""

import ctypes
import os
import resource
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def kill_tree() -> None:
    me = os.getpid()
    for _ in range(50):
        pids = descendants(me)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # gone already; or not ours to kill (the PID namespace ends it with the sandbox)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


def main() -> int:
    python, script = sys.argv[1], sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    memory, cpu, fsize, nofile, nproc = (int(x) for x in os.environ.pop("SHAKE_RLIMITS").split(","))
    drop_uid = os.environ.pop("SHAKE_DROP_UID", None)

    def on_term(signum, frame):
        kill_tree()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    child = os.fork()
    if child == 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if drop_uid is not None:
            # From root to nobody: every capability goes, and RLIMIT_NPROC starts to count.
            os.setgroups([])
            os.setgid(int(drop_uid))
            os.setuid(int(drop_uid))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.execv(python, [python, "-I", script])
    while True:
        pid, status = os.waitpid(child, 0)
        if pid == child:
            break
    kill_tree()
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
