"""The seccomp filter every sandboxed script runs under: a small classic-BPF program of our own.

Why a deny list and not an allow list: a generated script may use most of Python's standard library
(threads, subprocesses, sockets that fail on a network namespace without interfaces, mmap, select), and
an allow list that breaks ordinary scripts would be switched off. So everything is allowed except
the kernel surfaces that a script never needs and that an attacker uses to get out of the other
limits (each group below says why). A denied call fails with EPERM (the script sees an ordinary
`PermissionError`); `clone3` fails with ENOSYS, so that the C library falls back to `clone`, whose flags
the filter can read (clone3 passes them in memory, out of a filter's reach); a call made through
another architecture's entry point (x86-64's i386 `int 0x80`, or the x32 ABI) ends the process, because
its numbers differ and would slip past the table.

Why our own program rather than libseccomp: libseccomp2 is installed here and usable through ctypes
(`seccomp_rule_add_array` avoids its variadic call), but the program needed is thirty jumps and the
launcher inside the sandbox may only use the standard library; building the bytes here keeps the
engine free of a native dependency and the whole policy readable in one table. The numbers are checked
against the kernel headers by the tests where the headers are installed.

The launcher installs the program itself (`prctl(PR_SET_SECCOMP)`), after it has mounted the run's
capped tmpfs and before it starts the script: bubblewrap's `--seccomp FD` would apply it before the
launcher runs, and the filter denies `mount`.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# <linux/audit.h>, <linux/seccomp.h>, <linux/filter.h>
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low word (little-endian)

# Namespace flags of clone(2) (<linux/sched.h>): any of them in the flags means a new namespace.
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET

# Denied system calls, by group, with why. Numbers: x86-64 (asm/unistd_64.h), aarch64 (asm-generic).
DENIED: dict[str, tuple[str, dict[str, tuple[int, int]]]] = {
    "namespaces": (
        "a new user namespace gives a script root inside it: mounts of its own (tmpfs pins RAM outside every "
        "limit) and a far larger kernel surface",
        {"unshare": (272, 97), "setns": (308, 268)}),
    "mounts": (
        "nothing in a script mounts; denied too so that the launcher's capped tmpfs cannot be replaced",
        {"mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
         "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430), "fsconfig": (431, 431),
         "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442), "open_tree_attr": (467, 467)}),
    "keyring": (
        "kernel keys belong to the uid and outlive the run: one run could leave keys (and a full quota) for the "
        "next",
        {"add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219)}),
    "io_uring": (
        "asynchronous I/O that bypasses this very filter for the operations it performs, and a frequent source "
        "of kernel bugs",
        {"io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427)}),
    "kernel surface": (
        "eBPF programs, performance counters and user-space page-fault handling: kernel attack surface, never "
        "needed by a script",
        {"bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282)}),
    "other processes": (
        "reading or steering another process (the launcher, a sibling) is never part of a script's job",
        {"ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271)}),
    "host administration": (
        "modules, kexec, swap, reboot, accounting, quotas, the kernel log and file handles: all need "
        "capabilities the script lacks; denied so that a missed capability is not the only wall",
        {"init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
         "kexec_load": (246, 104), "kexec_file_load": (320, 294), "swapon": (167, 224), "swapoff": (168, 225),
         "reboot": (169, 142), "acct": (163, 89), "quotactl": (179, 60), "syslog": (103, 116),
         "lookup_dcookie": (212, 18), "name_to_handle_at": (303, 264), "open_by_handle_at": (304, 265)}),
}
# Denied only where SysV shared memory is not capped (no memory cgroup and no IPC-namespace limits):
# its pages are not counted by RLIMIT_AS.
SHM = ("shmget", (29, 194))
CLONE = ("clone", (56, 220))
CLONE3 = ("clone3", (435, 435))
ARCH_INDEX = {"x86_64": 0, "aarch64": 1}


class SeccompUnsupported(Exception):
    """This machine's architecture has no table here."""


@dataclass(frozen=True)
class Policy:
    deny_shm: bool  # True where SysV shared memory would escape every memory limit

    def denied_names(self) -> list[str]:
        names = [name for _, table in DENIED.values() for name in table]
        return names + [SHM[0]] * self.deny_shm


def machine() -> str:
    arch = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _deny(nr: int, err: int = errno.EPERM) -> bytes:
    """`if nr == NR: return ERRNO(err)` (the jump falls through to the return when equal)."""
    return _insn(BPF_JEQ_K, nr, 0, 1) + _insn(BPF_RET_K, SECCOMP_RET_ERRNO | err)


def build(policy: Policy, arch: str | None = None) -> bytes:
    """The filter as the bytes of a `struct sock_filter[]`, ready for `prctl(PR_SET_SECCOMP)`."""
    arch = arch or machine()
    if arch not in AUDIT_ARCH:
        raise SeccompUnsupported(f"no seccomp table for the {arch} architecture (x86_64 and aarch64 have one)")
    i = ARCH_INDEX[arch]
    prog = _insn(BPF_LD_W_ABS, OFFSET_ARCH)
    prog += _insn(BPF_JEQ_K, AUDIT_ARCH[arch], 1, 0) + _insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS)
    prog += _insn(BPF_LD_W_ABS, OFFSET_NR)
    if arch == "x86_64":  # x32 numbers carry this bit; none of them is allowed
        prog += _insn(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1) + _insn(BPF_RET_K, SECCOMP_RET_KILL_PROCESS)
    for _, table in DENIED.values():
        for numbers in table.values():
            prog += _deny(numbers[i])
    if policy.deny_shm:
        prog += _deny(SHM[1][i])
    prog += _deny(CLONE3[1][i], errno.ENOSYS)
    # clone: allowed unless a namespace flag is set in its first argument.
    prog += _insn(BPF_JEQ_K, CLONE[1][i], 0, 3)
    prog += _insn(BPF_LD_W_ABS, OFFSET_ARG0)
    prog += _insn(BPF_JSET_K, NAMESPACE_FLAGS, 0, 1)
    prog += _insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM)
    prog += _insn(BPF_RET_K, SECCOMP_RET_ALLOW)
    return prog


def describe(policy: Policy) -> list[str]:
    """What the filter denies and why, one line per group (the README's table is written from this)."""
    lines = [f"{group}: {', '.join(table)} ({why})" for group, (why, table) in DENIED.items()]
    lines.append("clone with a namespace flag (a new namespace), and clone3 (ENOSYS: its flags are out of "
                 "reach, the C library falls back to clone)")
    if policy.deny_shm:
        lines.append("shmget: SysV shared memory is not capped here (no memory cgroup, no IPC limits)")
    return lines
