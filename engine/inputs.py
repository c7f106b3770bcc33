"""Files the user names on the command line: checked before anything is read from or written to them.

Every problem is one `InputError` sentence that names the file and says what to do, so that the CLI
prints one line and exits 2. What each check prevents:
- a FIFO or a device given as the script, the request or the feedback: reading it hangs forever or
  never ends (`/dev/zero`), so files are opened without blocking and must be regular files;
- a symbolic link: `script.py` pointing at `~/.ssh/id_ed25519` would send the key to the teachers and
  into the dataset, and `--out` through a link writes somewhere else than the user sees. Links are
  refused with where they point, so that the user can name that file if it is the one meant;
- text that is not UTF-8, or too large: refused with the place of the first bad byte, before a session
  starts or changes (a feedback file is read whole before the session moves);
- `--out` onto a device node (as root, replacing `/dev/full` by a file), into /proc, /sys or another
  kernel file system, onto an existing file (only with `--force`), or into a directory that does not
  exist.
"""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

from engine.errors import InputError, ShakeError

MAX_SCRIPT_BYTES = 200_000
MAX_TEXT_BYTES = 1 << 20  # a request or a feedback file
KERNEL_FILESYSTEMS = {
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "efivarfs", "fusectl", "binfmt_misc", "mqueue", "hugetlbfs", "autofs", "rpc_pipefs",
    "nsfs", "selinuxfs",
}
KERNEL_PATHS = ("/proc", "/sys", "/dev")
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _symlink_message(path: Path, what: str) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    resolved = (path.parent / target).resolve() if not os.path.isabs(target) else Path(target)
    return (f"{path} is a symbolic link to {resolved}; give {resolved} itself if that is the {what} you mean")


def read_bytes(path: Path, what: str, max_bytes: int) -> bytes:
    """A regular file's bytes, opened without following a link and without blocking on a FIFO."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"no {what} at {path}") from None
    except OSError as err:
        if path.is_symlink():
            raise InputError(_symlink_message(path, what)) from None
        raise InputError(f"{path} cannot be read: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path} is a directory; give the {what} itself")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path} is {kind_of(info.st_mode)}, not a file; give the {what} as a regular file")
        if info.st_size > max_bytes:
            raise InputError(f"{path} is {info.st_size} bytes; a {what} of up to {max_bytes} bytes is supported")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # the file grew while we read it
                raise InputError(f"{path} is over {max_bytes} bytes; a {what} of up to {max_bytes} bytes is supported")
        return b"".join(chunks)
    except OSError as err:
        raise InputError(f"{path} cannot be read: {err.strerror}") from None
    finally:
        os.close(fd)


def decode_utf8(data: bytes, where: str, error: type[ShakeError] = InputError) -> str:
    """UTF-8 text, or one error that says where the first bad byte is."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(f"{where} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); "
                         "save it as UTF-8") from None


def read_text(path: Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    return decode_utf8(read_bytes(path, what, max_bytes), str(path))


def read_script(path: Path) -> str:
    """The script a session starts from: a regular UTF-8 file that parses."""
    path = Path(path)
    text = read_text(path, "script", MAX_SCRIPT_BYTES)
    try:
        compile(text, str(path), "exec")
    except SyntaxError as err:
        raise InputError(
            f"{path} does not parse (line {err.lineno}: {err.msg}); fix the syntax error first, "
            "the engine needs a script that runs as its starting point"
        ) from None
    except ValueError as err:  # null bytes
        raise InputError(f"{path} is not a Python script ({err})") from None
    return text if text.endswith("\n") or not text else text + "\n"


def read_request(text: str | None, path: Path | None) -> str | None:
    """The change request from `--request TEXT` or `--request-file PATH` (for one longer than argv allows)."""
    if path is None:
        return text
    request = read_text(path, "request file").strip()
    if not request:
        raise InputError(f"{path} is empty; write the change request in it")
    return request


def filesystem_type(path: Path) -> str:
    """The type of the file system `path` (which must exist) is on, from /proc/self/mountinfo; "" if unknown."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""
    target = str(path.resolve())
    best, fstype = "", ""
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, right.split()[0]
    return fstype


def check_output(path: Path, *, force: bool = False, directory: bool = False, what: str = "--out") -> Path:
    """Refuse an output path that would hit a device, a kernel file system, a link, or (unless `force`)
    an existing file; for a directory output, one that exists and is not empty."""
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    except OSError as err:
        raise InputError(f"{what} {path}: {err.strerror}") from None
    if info is None and not path.parent.is_dir():
        raise InputError(f"{what} {path}: the directory {path.parent} does not exist")
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise InputError(f"{what} {_symlink_message(path, 'output')}")
        if directory and not stat.S_ISDIR(info.st_mode):
            raise InputError(f"{what} {path} is {kind_of(info.st_mode)}; give a new or empty directory")
        if not directory and not stat.S_ISREG(info.st_mode):
            raise InputError(f"{what} {path} is {kind_of(info.st_mode)}; refusing to replace it, give a file name")
    where = path if info is not None else path.parent
    resolved = str(where.resolve())
    fstype = filesystem_type(where)
    if fstype in KERNEL_FILESYSTEMS or any(resolved == p or resolved.startswith(p + "/") for p in KERNEL_PATHS):
        raise InputError(f"{what} {path} is on a kernel file system ({fstype or resolved}); write to a normal directory")
    if info is None:
        return path
    if directory:
        if any(path.iterdir()):
            raise InputError(f"{what} {path} is not empty; choose a new directory")
        return path
    if not force:
        raise InputError(f"{what} {path} already exists; pass --force to replace it")
    return path


def bounded_int(low: int, high: int):
    """An argparse type: an integer in [low, high], else argparse's one-line usage error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse
