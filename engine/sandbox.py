"""Bubblewrap isolation for generated scripts.

Inside the sandbox a script sees: a read-only /usr (and the /lib, /bin links), the Python
installation and virtual environment read-only, its own writable run directory (`/sandbox/run`,
also $HOME and the working directory), a fresh /tmp, /proc and /dev; no network (a new network
namespace with no interfaces up), its own PID namespace (everything in it dies with it), a new
session (no controlling terminal: TIOCSTI has no terminal to inject into), a cleared environment, and
everything else of the filesystem is absent or read-only. As root, bwrap keeps only CAP_SETUID,
CAP_SETGID and CAP_KILL, so that the launcher can drop the script to `nobody` (which clears every
capability and makes RLIMIT_NPROC count: the kernel never applies it to root) and end its
processes; as a normal user, bwrap runs unprivileged with a user namespace.

Where bwrap is missing or cannot create namespaces, scripts are refused with the reason and the fix,
unless the configuration says `[runner] sandbox = "none"`: never a silent fallback.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from engine.errors import ShakeError

NOBODY = 65534
RUN_DIR = "/sandbox/run"
LAUNCHER_IN = "/sandbox/launcher.py"


class SandboxUnavailable(ShakeError):
    """Scripts cannot run isolated here, and unsandboxed execution was not opted into."""


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


def bwrap_args(workdir: Path, launcher: Path, env: dict[str, str]) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(_missing_message())
    if privileged():
        ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
              "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        ns = ["--unshare-all", "--cap-drop", "ALL"]
    args = [bwrap, *ns, "--die-with-parent", "--new-session", "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    # Order matters: bwrap mounts in sequence, so the fresh /tmp comes before the Python binds (a
    # virtual environment under /tmp, as in a fresh clone there, would otherwise be hidden by it).
    args += _system_binds() + ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"] + _python_binds()
    args += [
        "--bind", str(workdir), RUN_DIR,
        "--ro-bind", str(launcher), LAUNCHER_IN,
        "--chdir", RUN_DIR,
        "--remount-ro", "/",
    ]
    return args


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
