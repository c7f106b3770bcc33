"""Launcher for a generated script: `python -I launcher.py`, its settings in $SHAKE_LAUNCH (JSON).

Standard library only: it runs before anything else is imported, inside the sandbox. In order:
1. It becomes a child subreaper, so that every descendant of the script (even one that double-forks
   and calls `setsid`) stays its descendant, to be killed at the end.
2. Sandboxed, as root: it gives the two tmpfs that bubblewrap mounted (/tmp and the run directory,
   `/sandbox/run`, where bubblewrap also put the script) their caps again with `nr_inodes`, which
   bubblewrap cannot set (its `--size` sets the size only), hands the run directory and the script to
   the run's uid, and drops CAP_SYS_ADMIN and CAP_CHOWN. The script's files live in RAM the kernel frees
   with the mount namespace (and the run's memory cgroup counts them): nothing lands on the host's disk
   and nothing is left to clean.
3. It caps SysV shared memory in the run's IPC namespace (`shmmax`, `shmall`, `shm_rmid_forced`):
   those pages are not counted by RLIMIT_AS.
4. It installs the seccomp filter (built by seccomp.py) on itself: everything after inherits it.
5. The child applies the rlimits, drops root to the run's own uid (every capability goes, and
   RLIMIT_NPROC starts to count), and execs `python -I -u` (unbuffered: what a script printed before
   the timeout is not lost in a buffer). In project mode the engine gives the whole command (`argv`):
   `python -E -s -B -u ...` without `-I`, so that the script's directory is on sys.path and its
   sibling modules import.
The parent waits, then kills whatever the script left behind. SIGTERM (the engine's timeout) kills the
whole tree.

With `"probe": true` it does steps 2-4 and prints, as one JSON line, which of them worked.
"""

import ctypes
import json
import os
import resource
import signal
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_SET_CHILD_SUBREAPER = 36
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 2, 4, 32, 4096
CAP_CHOWN, CAP_SYS_ADMIN = 0, 21
LINUX_CAPABILITY_VERSION_3 = 0x20080522

libc = ctypes.CDLL(None, use_errno=True)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def descendants(root):
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


def kill_tree():
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


def cap_disk(disk, uid, script=None):
    """Size and inode caps on /tmp and the run directory; the run directory then belongs to the script."""
    options = f"size={disk['bytes']},nr_inodes={disk['inodes']}".encode()
    for mount_point in ("/tmp", disk["run_dir"]):
        flags = MS_REMOUNT | MS_NOSUID | MS_NODEV
        _check(libc.mount(b"none", mount_point.encode(), b"tmpfs", flags, options), f"remount {mount_point}")
    if uid is not None:
        for path in (script, disk["run_dir"]):  # the directory last: root without CAP_DAC_OVERRIDE stays out
            if path:
                os.chown(path, uid, uid)


def drop_mount_capabilities():
    """Keep CAP_SETUID, CAP_SETGID and CAP_KILL; CAP_SYS_ADMIN and CAP_CHOWN were for the set-up only."""
    header = struct.pack("=Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = ctypes.create_string_buffer(24)
    _check(libc.capget(header, data), "capget")
    words = list(struct.unpack("=6I", data.raw))
    for i in range(3):  # effective, permitted, inheritable of the first 32 capabilities
        words[i] &= ~((1 << CAP_SYS_ADMIN) | (1 << CAP_CHOWN))
    _check(libc.capset(header, struct.pack("=6I", *words)), "capset")


def cap_shm(shm):
    """SysV shared memory in this IPC namespace: at most the script's memory, destroyed when unused."""
    for name, value in (("shmmax", shm["bytes"]), ("shmall", shm["pages"]), ("shm_rmid_forced", 1)):
        with open(f"/proc/sys/kernel/{name}", "w") as f:
            f.write(str(value))


def install_seccomp(path):
    with open(path, "rb") as f:
        program = f.read()
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def probe(cfg):
    found = {}
    for step, action in (("disk", lambda: cap_disk(cfg["disk"], cfg.get("uid"))),
                         ("shm", lambda: cap_shm(cfg["shm"])),
                         ("seccomp", lambda: install_seccomp(cfg["seccomp"]))):
        try:
            action()
            found[step] = ""
        except (OSError, KeyError, TypeError) as err:
            found[step] = str(err) or type(err).__name__
    print(json.dumps(found))
    return 0


def main():
    cfg = json.loads(os.environ.pop("SHAKE_LAUNCH"))
    if cfg.get("probe"):
        return probe(cfg)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    uid = cfg.get("uid")
    script = cfg.get("script")  # None in project mode: the script is in the read-only project copy
    argv = cfg.get("argv") or [cfg["python"], "-I", "-u", script]
    try:
        if cfg.get("disk"):
            cap_disk(cfg["disk"], uid, script)
            drop_mount_capabilities()
        if cfg.get("shm"):
            cap_shm(cfg["shm"])
        if cfg.get("seccomp"):
            install_seccomp(cfg["seccomp"])
    except OSError as err:
        # The engine probed all of this before: a failure here is the sandbox's, not the script's.
        print(f"[shake sandbox] could not set up the run: {err}", file=sys.stderr)
        return 125
    memory, cpu, fsize, nofile, nproc = cfg["rlimits"]

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
        if uid is not None:
            # From root to the run's own uid: every capability goes, and RLIMIT_NPROC starts to count.
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.execv(argv[0], argv)
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
