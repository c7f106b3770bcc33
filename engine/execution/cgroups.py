"""One control group per run: a memory limit that counts what RLIMIT_AS does not, and a process limit.

RLIMIT_AS counts a process's mappings, not SysV shared memory it has detached from, nor tmpfs pages,
nor pages of a memfd it only writes to: a script could hold gigabytes of host RAM that way. The kernel
charges all of them to the memory cgroup of the process that touched them, so each run gets its own
group with `memory` = the script's allowance + its disk allowance (its files live in RAM, on tmpfs) +
a small overhead for bubblewrap and the launcher, and `pids` = its process allowance + those three.

Which interface (probed, never assumed, once per process):
- cgroup v2, where our own group offers the `memory` and `pids` controllers and we may write it: as
  root, or as a normal user in a group systemd delegated (`systemd-run --user --scope -p Delegate=yes
  shake`). The v2 rule that a group with children under controllers holds no processes means that, if
  our group holds only this process, it first moves into a leaf `shake-engine-PID` beside the runs.
- cgroup v1, where the `memory` and `pids` hierarchies are mounted and our groups in them are writable
  (root): `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` where swap is accounted), `pids.max`.
- neither: the runner says so once and the seccomp filter denies `shmget` unless the IPC namespace
  limits apply (see launcher.py).

Groups are named `shake-run-PID-N` after the engine that made them, so that a later engine removes the
groups of one that was killed (`sweep`) and never those of one still running.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

GROUP_PREFIX = "shake-run-"
OVERHEAD_BYTES = 48 << 20  # bubblewrap (two processes) and the launcher's interpreter
OVERHEAD_PIDS = 3
_STALE = re.compile(rf"^(?:{GROUP_PREFIX}(\d+)-(?:\d+|probe)|shake-engine-(\d+))$")
_counter = itertools.count()


@dataclass(frozen=True)
class CgroupSupport:
    """Where run groups are made: version 2 (one directory) or 1 (one per controller), or none and why."""

    version: int | None
    parents: dict[str, Path] = field(default_factory=dict)  # "memory"/"pids" -> directory; v2: both the same
    reason: str = ""  # why there is none, or where they are

    @property
    def available(self) -> bool:
        return self.version is not None


def _own_groups(proc_cgroup: str) -> dict[str, str]:
    """/proc/self/cgroup: hierarchy controllers -> our path ("" is the v2 hierarchy)."""
    groups: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                groups[controller] = parts[2]
    return groups


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(fs type, mount point, root inside the fs, super options) for each cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((tail[0], _unescape(fields[4]), _unescape(fields[3]), set(tail[2].split(","))))
    return found


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _join(mount_point: str, mount_root: str, group: str) -> Path | None:
    if mount_root != "/" and not (group + "/").startswith(mount_root.rstrip("/") + "/"):
        return None  # our group is outside what this mount shows
    relative = group[len(mount_root.rstrip("/")):] if mount_root != "/" else group
    return Path(mount_point) / relative.lstrip("/")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _try_group(parent: Path, files: dict[str, str]) -> str | None:
    """Make a scratch group under `parent`, write the limit files, remove it: None if all of that works."""
    probe = parent / f"{GROUP_PREFIX}{os.getpid()}-probe"
    try:
        probe.mkdir(exist_ok=True)
    except OSError as err:
        return f"cannot create a group in {parent}: {err.strerror}"
    try:
        for name, value in files.items():
            _write(probe / name, value)
        return None
    except OSError as err:
        return f"cannot set {name} in {parent}: {err.strerror}"
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def _probe_v2(mount_point: str, mount_root: str, group: str) -> CgroupSupport:
    own = _join(mount_point, mount_root, group)
    if own is None:
        return CgroupSupport(None, reason="cgroup v2: our group is not visible in the mounted hierarchy")
    try:
        controllers = set((own / "cgroup.controllers").read_text().split())
    except OSError as err:
        return CgroupSupport(None, reason=f"cgroup v2: cannot read {own}/cgroup.controllers: {err.strerror}")
    if not {"memory", "pids"} <= controllers:
        missing = " and ".join(sorted({"memory", "pids"} - controllers))
        return CgroupSupport(None, reason=f"cgroup v2: our group {own} has no {missing} controller "
                                          "(the host binds it to v1, or does not delegate it)")
    if not os.access(own, os.W_OK):
        return CgroupSupport(None, reason=f"cgroup v2: {own} is not delegated to us; run shake in a delegated "
                                          "scope: systemd-run --user --scope -p Delegate=yes shake")
    enabled = set((own / "cgroup.subtree_control").read_text().split())
    if not {"memory", "pids"} <= enabled:
        try:
            procs = [int(p) for p in (own / "cgroup.procs").read_text().split()]
        except OSError as err:
            return CgroupSupport(None, reason=f"cgroup v2: cannot read {own}/cgroup.procs: {err.strerror}")
        if procs and procs != [os.getpid()] and group != "/":
            return CgroupSupport(None, reason=f"cgroup v2: {own} also holds other processes; run shake in its own "
                                              "delegated scope: systemd-run --user --scope -p Delegate=yes shake")
        try:
            if procs and group != "/":
                leaf = own / f"shake-engine-{os.getpid()}"
                leaf.mkdir(exist_ok=True)
                _write(leaf / "cgroup.procs", str(os.getpid()))
            _write(own / "cgroup.subtree_control", "+memory +pids")
        except OSError as err:
            return CgroupSupport(None, reason=f"cgroup v2: cannot enable memory and pids under {own}: {err.strerror}")
    problem = _try_group(own, {"memory.max": str(64 << 20), "pids.max": "16"})
    if problem:
        return CgroupSupport(None, reason=f"cgroup v2: {problem}")
    return CgroupSupport(2, {"memory": own, "pids": own}, reason=f"cgroup v2 under {own}")


def _probe_v1(mounts, groups: dict[str, str]) -> CgroupSupport:
    parents: dict[str, Path] = {}
    for controller, limit in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
        mount = next((m for m in mounts if m[0] == "cgroup" and controller in m[3]), None)
        if mount is None or controller not in groups:
            return CgroupSupport(None, reason=f"cgroup v1: no {controller} hierarchy is mounted")
        parent = _join(mount[1], mount[2], groups[controller])
        if parent is None:
            return CgroupSupport(None, reason=f"cgroup v1: our {controller} group is not visible in {mount[1]}")
        problem = _try_group(parent, {limit: str(64 << 20) if controller == "memory" else "16"})
        if problem:
            return CgroupSupport(None, reason=f"cgroup v1: {problem}")
        parents[controller] = parent
    where = ", ".join(f"{c} under {p}" for c, p in parents.items())
    return CgroupSupport(1, parents, reason=f"cgroup v1 ({where})")


@functools.lru_cache(maxsize=1)
def probe() -> CgroupSupport:
    try:
        groups = _own_groups(Path("/proc/self/cgroup").read_text())
        mounts = _mounts(Path("/proc/self/mountinfo").read_text())
    except OSError as err:
        return CgroupSupport(None, reason=f"cannot read this process's cgroups: {err.strerror}")
    reasons = []
    v2 = next((m for m in mounts if m[0] == "cgroup2"), None)
    if v2 is not None and "" in groups:
        found = _probe_v2(v2[1], v2[2], groups[""])
        if found.available:
            return found
        reasons.append(found.reason)
    found = _probe_v1(mounts, groups)
    if found.available:
        return found
    reasons.append(found.reason)
    return CgroupSupport(None, reason="; ".join(reasons))


class RunGroup:
    """The cgroup(s) of one run. `close()` never raises: it says what it could not remove."""

    def __init__(self, support: CgroupSupport, memory_bytes: int, max_pids: int) -> None:
        self.support = support
        name = f"{GROUP_PREFIX}{os.getpid()}-{next(_counter)}"
        self.dirs = sorted({parent / name for parent in support.parents.values()})
        self.memory_dir = support.parents["memory"] / name
        self.pids_dir = support.parents["pids"] / name
        for d in self.dirs:
            d.mkdir()
        try:
            if support.version == 2:
                _write(self.memory_dir / "memory.max", str(memory_bytes))
                if (self.memory_dir / "memory.swap.max").exists():  # no escape into swap
                    _write(self.memory_dir / "memory.swap.max", "0")
            else:
                _write(self.memory_dir / "memory.limit_in_bytes", str(memory_bytes))
                if (self.memory_dir / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
                    _write(self.memory_dir / "memory.memsw.limit_in_bytes", str(memory_bytes))
            _write(self.pids_dir / "pids.max", str(max_pids))
        except OSError:
            self.close()
            raise

    def add(self, pid: int) -> None:
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return sorted(found)

    def memory_killed(self) -> bool:
        """Whether the kernel's OOM killer ended a process of this run (its memory limit was reached)."""
        try:
            if self.support.version == 2:
                events = (self.memory_dir / "memory.events").read_text()
                return any(line.split()[1] != "0" for line in events.splitlines() if line.startswith("oom_kill "))
            control = (self.memory_dir / "memory.oom_control").read_text()
            # Kernels before 4.13 have no oom_kill count here; failcnt also counts mere reclaim, so: unknown.
            return any(line.split()[1] != "0" for line in control.splitlines() if line.startswith("oom_kill "))
        except (OSError, IndexError):
            return False

    def close(self) -> str | None:
        return _remove(self.dirs)


def _remove(dirs: list[Path]) -> str | None:
    """Kill whatever is left in the groups and remove them; the problem in words, or None."""
    problem = None
    for attempt in range(50):
        problem = None
        for d in dirs:
            if not d.exists():
                continue
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                d.rmdir()
            except OSError as err:
                problem = f"could not remove the run's cgroup {d}: {err.strerror}"
        if problem is None:
            return None
        time.sleep(0.02)  # processes that were killed take a moment to leave
    return problem


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(support: CgroupSupport) -> list[str]:
    """Remove the run groups of engines that no longer exist; what could not be removed, in words."""
    problems = []
    for parent in set(support.parents.values()):
        try:
            children = list(parent.iterdir())
        except OSError:
            continue
        stale = [d for d in children
                 if (m := _STALE.match(d.name)) and d.is_dir() and not _alive(int(m.group(1) or m.group(2)))]
        for d in stale:
            if problem := _remove([d]):
                problems.append(problem)
    return problems
