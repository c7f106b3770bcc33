"""The parts of engine/execution/ on their own: the sanitizer, the seccomp program, tree removal, the
sweep of stale run directories, and reading this process's cgroups."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.execution import cgroups, scratch, seccomp
from engine.execution.sanitize import is_safe, sanitize

ALLOWED_CONTROLS = {"\n", "\t"}
# Bidirectional overrides, isolates and marks, and the invisible or line-breaking characters: each
# changes what a reader sees without being seen (the marks and U+200B / U+2028 passed, issue 23).
HIDDEN = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u2060\ufeff\u2028\u2029"


def controls(text: str) -> set[str]:
    return {c for c in text if (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in ALLOWED_CONTROLS}


# -- sanitize ------------------------------------------------------------------------------------
@settings(max_examples=500)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\x1b\x07\r\n\t\x9b\x7f\x00" + HIDDEN)))
def test_sanitized_text_never_holds_a_control_character_but_newline_and_tab(text):
    out = sanitize(text)
    assert controls(out) == set() and is_safe(out)
    assert not set(HIDDEN) & set(out)
    assert sanitize(out) == out  # idempotent: sanitizing at capture and again at display is harmless


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc",), blacklist_characters=HIDDEN)
               | st.sampled_from("\n\t\u200c\u200d")))
def test_text_without_control_characters_is_left_alone(text):
    assert sanitize(text) == text


def test_escape_sequences_become_visible_and_harmless():
    assert sanitize("\x1b]52;c;SGk=\x07") == "␛]52;c;SGk=␇"
    assert sanitize("\x1b[?1049l\x1b]0;title\x1b\\") == "␛[?1049l␛]0;title␛\\"
    assert sanitize("a\r\nb\rc\x7f\x9b1m") == "a\nb␍c␡<U+009B>1m"
    assert sanitize("x = '\u202e'  # reversed") == "x = '<U+202E>'  # reversed"


def test_bidi_marks_and_invisible_characters_become_visible():
    """U+200E, U+200F, U+061C, U+200B and U+2028 passed the sanitizer (issue 23, item 17)."""
    assert sanitize("a\u200eb\u200fc\u061cd") == "a<U+200E>b<U+200F>c<U+061C>d"
    assert sanitize("is\u200b_admin\u2028x\u2029\ufeff\u2060") == "is<U+200B>_admin<U+2028>x<U+2029><U+FEFF><U+2060>"
    assert sanitize("👩\u200d💻 \u200c") == "👩\u200d💻 \u200c"  # joiners stay: emoji and scripts need them


# -- seccomp -----------------------------------------------------------------------------------
HEADERS = {"x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
           "aarch64": Path("/usr/include/asm-generic/unistd.h")}


@pytest.mark.parametrize("arch", sorted(seccomp.ARCH_INDEX))
def test_system_call_numbers_match_the_kernel_headers(arch):
    header = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} is not installed (linux-libc-dev)")
    defined = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)", header.read_text())}
    i = seccomp.ARCH_INDEX[arch]
    table = {name: nrs[i] for _, group in seccomp.DENIED.values() for name, nrs in group.items()}
    table.update({name: nrs[i] for name, nrs in (seccomp.SHM, seccomp.CLONE, seccomp.CLONE3)})
    checked = {name: nr for name, nr in table.items() if name in defined}
    assert checked == {name: defined[name] for name in checked}
    # Calls newer than these headers (open_tree_attr, Linux 6.15) are the only ones left unchecked.
    assert set(table) - set(checked) <= {"open_tree_attr"}


@pytest.mark.parametrize("deny_shm", [False, True])
def test_the_filter_program_is_well_formed(deny_shm):
    program = seccomp.build(seccomp.Policy(deny_shm=deny_shm), "x86_64")
    assert len(program) % 8 == 0 and len(program) // 8 < 4096
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    for index, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump: both targets inside the program
            assert index + 1 + max(jt, jf) < len(insns)
    assert insns[-1] == (0x06, 0, 0, seccomp.SECCOMP_RET_ALLOW)
    shm_denied = any(code == 0x15 and k == seccomp.SHM[1][0] for code, _, _, k in insns)
    assert shm_denied == deny_shm


def test_an_unknown_architecture_is_said_not_guessed():
    with pytest.raises(seccomp.SeccompUnsupported, match="riscv64"):
        seccomp.build(seccomp.Policy(deny_shm=False), "riscv64")


# -- removing trees --------------------------------------------------------------------------------
def test_a_tree_1500_deep_with_locked_directories_is_removed(tmp_path):
    top = tmp_path / "run"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(1500):  # os.makedirs itself recurses too deep for this
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.close(fd)
    (top / "d" / "d").chmod(0o500)  # no write: its entries cannot be unlinked until it is opened up
    (top / "d").chmod(0)
    assert scratch.remove_tree(top) is None
    assert not top.exists()


def test_removal_does_not_follow_symlinks_out_of_the_tree(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    top = tmp_path / "run"
    top.mkdir()
    (top / "link").symlink_to(outside)
    (top / "file-link").symlink_to(outside / "keep.txt")
    assert scratch.remove_tree(top) is None
    assert (outside / "keep.txt").read_text() == "mine" and not top.exists()


def test_removal_reports_instead_of_raising(tmp_path, monkeypatch):
    top = tmp_path / "run"
    (top / "sub").mkdir(parents=True)
    real_rmdir = os.rmdir

    def failing_rmdir(path, *args, **kwargs):
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(os, "rmdir", failing_rmdir)
    problem = scratch.remove_tree(top)
    monkeypatch.setattr(os, "rmdir", real_rmdir)
    assert problem is not None and "busy" in problem
    assert scratch.remove_tree(tmp_path / "absent") is None


def test_sweep_removes_only_directories_nobody_holds(tmp_path):
    stale = tmp_path / "shake-run-stale"
    (stale / "deep" / "deeper").mkdir(parents=True)
    (stale / scratch.LOCK_NAME).touch()
    held = tmp_path / "shake-run-held"
    held.mkdir()
    (held / scratch.LOCK_NAME).touch()
    young_legacy = tmp_path / "shake-run-young"
    young_legacy.mkdir()
    old_legacy = tmp_path / "shake-run-old"
    old_legacy.mkdir()
    old = time.time() - scratch.LEGACY_AGE_S - 60
    os.utime(old_legacy, (old, old))
    other = tmp_path / "not-ours"
    other.mkdir()
    lock = os.open(held / scratch.LOCK_NAME, os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert scratch.sweep(str(tmp_path)) == []
    finally:
        os.close(lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-ours", "shake-run-held", "shake-run-young"]


def test_a_run_directory_holds_its_lock_until_closed(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run = scratch.RunDir()
    assert scratch.sweep(str(tmp_path)) == [] and run.path.exists()  # in use: kept
    assert run.close() is None and not run.path.exists()


# -- cgroups ---------------------------------------------------------------------------------------
HYBRID = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
0::/
"""
MOUNTINFO = """\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:40 /lxc/box /sys/fs/cgroup/inner\\040dir rw - cgroup2 cgroup2 rw
"""


def test_reading_which_groups_this_process_is_in():
    groups = cgroups._own_groups(HYBRID)
    assert groups["memory"] == "/process_api/abc" and groups["pids"] == "/" and groups[""] == "/"
    mounts = cgroups._mounts(MOUNTINFO)
    assert ("cgroup", "/sys/fs/cgroup/memory", "/", {"rw", "memory"}) in mounts
    assert mounts[-1][:3] == ("cgroup2", "/sys/fs/cgroup/inner dir", "/lxc/box")
    assert cgroups._join("/sys/fs/cgroup/memory", "/", "/process_api/abc") == Path("/sys/fs/cgroup/memory/process_api/abc")
    assert cgroups._join("/mnt", "/lxc/box", "/lxc/box/me") == Path("/mnt/me")
    assert cgroups._join("/mnt", "/lxc/box", "/elsewhere") is None


def test_the_probe_says_what_it_found_or_why_not():
    found = cgroups.probe()
    if found.available:
        assert found.version in (1, 2) and set(found.parents) == {"memory", "pids"}
        assert all(parent.is_dir() for parent in found.parents.values())
    else:
        assert found.reason  # never a silent "no"


def _fake_v2_group(root: Path, procs: list[int], enabled: str = "") -> Path:
    own = root / "user.slice" / "shake.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text(enabled)
    (own / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    return own


def test_cgroup_v2_delegation_file_protocol(tmp_path):
    """The v2 steps on a directory standing in for cgroupfs (this kernel binds memory and pids to v1, so the
    real v2 path only runs on a v2 host, where the memory tests above exercise it for real)."""
    own = _fake_v2_group(tmp_path, [os.getpid()])
    found = cgroups._probe_v2(str(tmp_path), "/", "/user.slice/shake.scope")
    assert found.version == 2 and found.parents == {"memory": own, "pids": own}
    leaf = own / f"shake-engine-{os.getpid()}"
    assert (leaf / "cgroup.procs").read_text() == str(os.getpid())  # we moved into a leaf first
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    probe = own / f"shake-run-{os.getpid()}-probe"
    assert (probe / "memory.max").read_text() == str(64 << 20) and (probe / "pids.max").read_text() == "16"


def test_cgroup_v2_refuses_a_group_shared_with_other_processes(tmp_path):
    _fake_v2_group(tmp_path, [os.getpid(), 1])
    found = cgroups._probe_v2(str(tmp_path), "/", "/user.slice/shake.scope")
    assert not found.available and "also holds other processes" in found.reason and "Delegate=yes" in found.reason


def test_cgroup_v2_without_the_controllers_says_so(tmp_path):
    own = _fake_v2_group(tmp_path, [os.getpid()])
    (own / "cgroup.controllers").write_text("cpu io\n")
    found = cgroups._probe_v2(str(tmp_path), "/", "/user.slice/shake.scope")
    assert not found.available and "no memory and pids controller" in found.reason
