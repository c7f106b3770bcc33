"""Bubblewrap isolation for generated scripts, and what this machine's kernel lets it add.

Inside the sandbox a script sees: a read-only /usr (and the /lib, /bin links), the Python
installation and virtual environment read-only, its own run directory (`/sandbox/run`, also $HOME
and the working directory) and a /tmp (1777), both tmpfs capped in size and (as root) in inodes, a
fresh /proc and /dev; no network (a new network namespace with no interfaces up), its own PID and IPC
namespaces (everything in them dies with the sandbox), a new session (no controlling terminal: TIOCSTI
has no terminal to inject into), a cleared environment, and nothing else of the file system. In
project mode (project.py) it also sees a read-only copy of the project at `/sandbox/project`, its
working directory there.

As root, bwrap keeps only CAP_SETUID, CAP_SETGID, CAP_KILL, and for the set-up CAP_SYS_ADMIN and
CAP_CHOWN (which the launcher drops once it has capped the tmpfs), and the launcher drops the script
to a uid of its own, drawn for each run from a reserved range (`UID_BASE`, 2^24 uids no account or
container manager uses), so that nothing the kernel keeps per user carries from one run to the next
(the shared `nobody` kept keyrings between runs). As a normal user, bwrap runs unprivileged with a new
user namespace per run, which gives the same freshness; the tmpfs then have a size cap only
(bubblewrap locks its mounts there, so they cannot be given an inode cap).

What the kernel offers is probed once per process (`features()`), never assumed: cgroups (see
cgroups.py), the tmpfs inode caps, the IPC-namespace shared-memory limits and seccomp. What is missing
is said once in the log and listed by `SandboxFeatures.limitations()`.

Where bwrap is missing or cannot create namespaces, scripts are refused with the reason and the fix,
unless the configuration says `[runner] sandbox = "none"`: never a silent fallback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ShakeError
from engine.execution import cgroups, seccomp

log = logging.getLogger("shake.sandbox")

RUN_DIR = "/sandbox/run"
PROJECT_IN = "/sandbox/project"  # project mode: the read-only copy of the project, the working directory
SCRIPT_IN = f"{RUN_DIR}/script.py"
LAUNCHER_IN = "/sandbox/launcher.py"
SECCOMP_IN = "/sandbox/seccomp.bpf"
LAUNCHER = Path(__file__).with_name("launcher.py")
# Run uids: 0x70000000 .. 0x70FFFFFF, above systemd's container ranges (which end at 0x6FFFFFFF) and
# below 2^31 (some tools read uids as signed).
UID_BASE = 0x70000000
UID_COUNT = 1 << 24
_used_uids: set[int] = set()


class SandboxUnavailable(ShakeError):
    """Scripts cannot run isolated here, and unsandboxed execution was not opted into."""


@dataclass(frozen=True)
class SandboxFeatures:
    """What this machine lets the sandbox add to bubblewrap; each text field is "" when it works, else why not."""

    privileged: bool
    cgroup: cgroups.CgroupSupport
    inode_caps: str
    shm_limits: str
    seccomp: str

    @property
    def deny_shm(self) -> bool:
        """SysV shared memory would escape every memory limit: the seccomp filter denies shmget."""
        return not self.cgroup.available and bool(self.shm_limits)

    def limitations(self) -> list[str]:
        out = []
        if not self.cgroup.available:
            out.append(f"no memory or process cgroup per run ({self.cgroup.reason}); RLIMIT_AS and RLIMIT_NPROC "
                       "still apply, and the tmpfs and shared memory are capped on their own")
        if self.inode_caps:
            out.append(f"the run directory and /tmp are not capped in files ({self.inode_caps})")
        if self.shm_limits:
            out.append(f"no SysV shared-memory limits in the run's IPC namespace ({self.shm_limits})"
                       + ("; the seccomp filter denies shmget instead" if self.deny_shm and not self.seccomp else ""))
        if self.seccomp:
            out.append(f"no seccomp filter ({self.seccomp}): namespaces, the keyring and io_uring are not denied")
        return out

    def summary(self) -> str:
        """What runs are limited by here, in one line."""
        parts = [("cgroup v%d" % self.cgroup.version) if self.cgroup.available else "no cgroup",
                 "seccomp" if not self.seccomp else "no seccomp",
                 "tmpfs capped in size and files" if not self.inode_caps else "tmpfs capped in size",
                 "a uid per run" if self.privileged else "a user namespace per run"]
        return ", ".join(parts)


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        p = Path(path)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), path]
        elif p.is_dir():
            args += ["--ro-bind", path, path]
    return args


def _parents(paths: list[str]) -> list[str]:
    """Create the mount points' parents world-traversable: bwrap makes them 0700, and the script
    runs as another user than the one that started bwrap."""
    seen: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if str(parent) != "/" and str(parent) not in seen:
                seen.append(str(parent))
    args = []
    for parent in seen:
        args += ["--perms", "0755", "--dir", parent]
    return args


def _python_binds() -> list[str]:
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    paths = [str(r) for r in sorted(roots) if not str(r).startswith("/usr")]
    if Path(sys.prefix) != Path(sys.prefix).resolve():  # a venv reached through a symlink
        paths.append(sys.prefix)
    args = _parents(paths + [RUN_DIR])
    for path in paths:
        args += ["--ro-bind", path, path]
    return args


def privileged() -> bool:
    return os.geteuid() == 0


def fresh_uid() -> int:
    """A uid from the reserved range that this engine has not used before."""
    while True:
        uid = UID_BASE + secrets.randbelow(UID_COUNT)
        if uid not in _used_uids:
            _used_uids.add(uid)
            return uid


@dataclass(frozen=True)
class Mounts:
    """The file descriptors bubblewrap copies into the sandbox, and the caps of its tmpfs."""

    script_fd: int | None  # None in project mode: the script is inside the project's copy
    seccomp_fd: int | None
    block_fd: int | None  # bubblewrap waits on it until the run's processes are in their cgroup
    disk_bytes: int
    project_dir: str | None = None  # project mode: the host copy, bound read-only at PROJECT_IN


def _namespaces() -> list[str]:
    if privileged():
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL",
                "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_CHOWN"]
    return ["--unshare-all", "--cap-drop", "ALL"]


def bwrap_args(mounts: Mounts, env: dict[str, str]) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(_missing_message())
    args = [bwrap, *_namespaces(), "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    size = ["--size", str(mounts.disk_bytes)] if _has_size_option(bwrap) else []
    # Order matters: bwrap mounts in sequence, so the fresh /tmp comes before the Python binds (a
    # virtual environment under /tmp, as in a fresh clone there, would otherwise be hidden by it).
    args += _system_binds() + ["--perms", "1777", *size, "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    args += _python_binds()
    args += ["--perms", "0700", *size, "--tmpfs", RUN_DIR]
    if mounts.script_fd is not None:
        args += ["--perms", "0644", "--file", str(mounts.script_fd), SCRIPT_IN]
    args += ["--ro-bind", str(LAUNCHER), LAUNCHER_IN]
    if mounts.project_dir is not None:
        args += ["--ro-bind", mounts.project_dir, PROJECT_IN]
    if mounts.seccomp_fd is not None:
        args += ["--ro-bind-data", str(mounts.seccomp_fd), SECCOMP_IN]
    if mounts.block_fd is not None:
        args += ["--block-fd", str(mounts.block_fd)]
    args += ["--chdir", RUN_DIR if mounts.project_dir is None else PROJECT_IN, "--remount-ro", "/"]
    return args


@functools.lru_cache(maxsize=1)
def _has_size_option(bwrap: str) -> bool:
    """bubblewrap 0.8 has `--size` for a tmpfs (older ones do not; the launcher's remount caps it as root)."""
    try:
        return "--size" in subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding `data`, positioned at its start (for bwrap to read)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _missing_message() -> str:
    return (
        "scripts run under bubblewrap, which is not installed; install it (Debian/Ubuntu: "
        "`sudo apt-get install bubblewrap`), or accept the risk of running model-written code "
        "unisolated with `sandbox = \"none\"` under [runner] in the config file"
    )


@functools.lru_cache(maxsize=1)
def probe() -> str | None:
    """None when bwrap can start a sandbox here, else why not (checked once per process)."""
    if shutil.which("bwrap") is None:
        return _missing_message()
    ns = (["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"] if privileged() else ["--unshare-all"])
    try:
        result = subprocess.run(
            ["bwrap", *ns, "--die-with-parent", *_system_binds(),
             "--proc", "/proc", "--dev", "/dev", "true"],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start: {err}"
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        return (
            f"bubblewrap cannot create a sandbox here ({reason}); user namespaces may be blocked "
            "(Ubuntu 24.04: an AppArmor profile for bwrap, or `sysctl kernel.apparmor_restrict_unprivileged_userns=0`). "
            "To run model-written code without isolation anyway, set sandbox = \"none\" under [runner]"
        )
    return None


def describe(mode: str) -> list[str]:
    """For `shake config`: how scripts run here, then each limitation on its own line."""
    if mode == "none":
        return ["none: model-written code runs unisolated ([runner] sandbox = \"none\", your opt-in)"]
    try:
        found = features()
    except SandboxUnavailable as err:
        return [f"unavailable: {err}"]
    return [f"bubblewrap with {found.summary()}"] + [f"  limitation: {line}" for line in found.limitations()]


PROBE_DISK = 1 << 20


@functools.lru_cache(maxsize=1)
def features() -> SandboxFeatures:
    """What the kernel lets the sandbox add, found by trying each in a sandbox (once per process)."""
    if (problem := probe()) is not None:
        raise SandboxUnavailable(problem)
    group = cgroups.probe()
    try:
        program = seccomp.build(seccomp.Policy(deny_shm=False))
    except seccomp.SeccompUnsupported as err:
        program, seccomp_problem = None, str(err)
    else:
        seccomp_problem = ""
    fds = [memfd("shake-probe", b""), memfd("shake-seccomp", program or b"")]
    launch = {"probe": True, "disk": {"bytes": PROBE_DISK, "inodes": 64, "run_dir": RUN_DIR},
              "shm": {"bytes": 1 << 20, "pages": 256}, "seccomp": SECCOMP_IN if program else None}
    if not privileged():
        launch["disk"] = None  # bubblewrap locks its mounts in a user namespace: size caps only
    env = {"PATH": "/usr/bin:/bin", "SHAKE_LAUNCH": json.dumps(launch)}
    command = bwrap_args(Mounts(fds[0], fds[1] if program else None, None, PROBE_DISK), env)
    try:
        result = subprocess.run(command + [sys.executable, "-I", LAUNCHER_IN], capture_output=True, text=True,
                                timeout=30, pass_fds=fds)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailable(f"the sandbox's launcher did not start: {err}") from None
    finally:
        for fd in fds:
            os.close(fd)
    try:
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        detail = result.stderr.strip()[-300:] or f"exit code {result.returncode}"
        raise SandboxUnavailable(f"the sandbox's launcher failed its probe: {detail}") from None
    if not privileged():
        found["disk"] = "bubblewrap, run as a normal user, locks its mounts" + (
            "" if _has_size_option(shutil.which("bwrap")) else ", and this bubblewrap has no --size: nor in size")
    found_features = SandboxFeatures(
        privileged=privileged(),
        cgroup=group,
        inode_caps=found.get("disk") or "",
        shm_limits=found.get("shm") or "",
        seccomp=seccomp_problem or found.get("seccomp") or "",
    )
    for limitation in found_features.limitations():
        log.warning("sandbox: %s", limitation)
    return found_features

