"""Project mode: a script that lives in a project, run the way its user runs it.

A script imports sibling modules, reads files next to it, takes arguments and has tests; run alone in
an empty directory it fails before any change is tried. In project mode the session knows:

- the project root: `--project DIR`, else the script's git work tree (the nearest directory above it
  holding `.git`), else the script's directory; it must contain the script;
- the run command (default `python <script>`), an optional stdin file, and an optional check command
  (`pytest -q tests/test_x.py`) whose failure counts as the run's failure.

Each run sees a **read-only copy** of the project at `/sandbox/project` (its working directory), the
proposed script at its own path inside, and the usual writable, thrown-away run directory as $HOME and
/tmp. A copy, not a bind of the project itself: the ignore rules decide exactly what is exposed, a
symbolic link in the project (to `~/.ssh`, say) is left out instead of followed, the proposal replaces
the script without touching the user's file, and nothing a run does can reach the project.

What is exposed is bounded (`Bounds`): directories by name (`IGNORED_DIRS`: .git, virtual environments,
node_modules, caches), files over `max_file_bytes` (data dumps, binaries), links and special files are
left out by rule and counted (`Exposure.summary()`); more than `max_bytes` or `max_files` after those
rules is refused with one line, before the session starts.

The commands are Python programs, run by the engine's interpreter: `python ARGS` or `pytest ARGS`
(= `python -m pytest ARGS`), split like a shell would split words but never given to a shell (no
pipes, redirections or `&&`; stdin comes from `--stdin FILE`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import InputError

IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules", "__pycache__",
                          ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints"})
PYTHON_WORDS = re.compile(r"^python(3(\.\d+)?)?$")
SHELL_WORDS = frozenset({"|", "||", "&&", "&", ";", ">", ">>", "<", "2>", "2>&1", "<<", "$("})
MAX_STDIN_BYTES = 16 << 20


@dataclass(frozen=True)
class Bounds:
    """How much of a project a run may see (files over `max_file_bytes` are left out by rule)."""

    max_bytes: int = 32 << 20
    max_files: int = 2000
    max_file_bytes: int = 1 << 20


@dataclass(frozen=True)
class RunSpec:
    """How a session's scripts run inside their project; stored in the session state."""

    root: str  # the project root on the host, absolute
    script: str  # the script's path inside the project (POSIX, relative)
    run: tuple[str, ...]  # the run command's words as the user gave them
    check: tuple[str, ...] = ()  # the check command's words; () = no check
    stdin: str | None = None  # a host file the run command reads on stdin
    bounds: Bounds = Bounds()

    @property
    def run_text(self) -> str:
        return shlex.join(self.run)

    @property
    def check_text(self) -> str:
        return shlex.join(self.check)


@dataclass(frozen=True)
class ProjectFile:
    path: str  # POSIX, relative to the root
    size: int
    executable: bool


@dataclass(frozen=True)
class Exposure:
    """What a scan of the project found: the files a run sees, and what the rules left out."""

    root: str
    files: tuple[ProjectFile, ...]
    ignored_dirs: tuple[str, ...]  # left out by name (IGNORED_DIRS, *.egg-info)
    large_files: tuple[str, ...]
    links: tuple[str, ...]  # symbolic links and special files, never followed

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(f.path for f in self.files)

    def has_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(f.startswith(prefix) for f in self.paths)

    def summary(self) -> str:
        left = []
        if self.ignored_dirs:
            left.append(f"{len(self.ignored_dirs)} by name ({', '.join(self.ignored_dirs[:3])}"
                        f"{', ...' if len(self.ignored_dirs) > 3 else ''})")
        if self.large_files:
            left.append(f"{len(self.large_files)} large file(s)")
        if self.links:
            left.append(f"{len(self.links)} link(s) or special file(s)")
        out = f"{len(self.files)} files, {_size(self.total_bytes)} exposed read-only"
        return out + (f" (left out: {', '.join(left)})" if left else "")


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def find_root(script: Path, explicit: Path | None = None) -> Path:
    """The project root: the explicit one, else the script's git work tree, else its directory."""
    script = Path(script).absolute()
    if explicit is not None:
        root = Path(explicit).resolve()
        if not root.is_dir():
            raise InputError(f"the project {explicit} is not a directory")
        return root
    for parent in script.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return script.resolve().parent


def relative_script(root: Path, script: Path) -> str:
    resolved = Path(script).resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        raise InputError(f"the project root {root} does not contain the script {resolved}; "
                         "give --project a directory above the script") from None


def scan(root: Path, bounds: Bounds) -> Exposure:
    """Walk the project without following links; refuse it when over the bounds (one line)."""
    files: list[ProjectFile] = []
    ignored, large, links = [], [], []
    total = 0
    stack = [PurePosixPath()]
    while stack:
        rel = stack.pop()
        try:
            entries = sorted(os.scandir(root / rel), key=lambda e: e.name)
        except OSError as err:
            raise InputError(f"the project directory {root / rel} cannot be read: {err.strerror}") from None
        for entry in entries:
            path = (rel / entry.name).as_posix()
            if entry.name in IGNORED_DIRS and not entry.is_symlink():
                ignored.append(path)  # a directory, or a worktree's `.git` file
            elif entry.is_symlink():
                links.append(path)
            elif entry.is_dir(follow_symlinks=False):
                if entry.name.endswith(".egg-info"):
                    ignored.append(path)
                else:
                    stack.append(rel / entry.name)
            elif entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                if info.st_size > bounds.max_file_bytes:
                    large.append(path)
                    continue
                files.append(ProjectFile(path, info.st_size, bool(info.st_mode & stat.S_IXUSR)))
                total += info.st_size
                if total > bounds.max_bytes or len(files) > bounds.max_files:
                    over = (f"over {_size(bounds.max_bytes)}" if total > bounds.max_bytes
                            else f"over {bounds.max_files} files")
                    raise InputError(
                        f"the project at {root} is too big to expose: {over} after the ignore rules (.git, virtual "
                        f"environments, node_modules, caches and files over {_size(bounds.max_file_bytes)} are left "
                        "out); give --project a smaller directory that holds the script")
            else:
                links.append(path)
    return Exposure(str(root), tuple(sorted(files, key=lambda f: f.path)), tuple(sorted(ignored)),
                    tuple(sorted(large)), tuple(sorted(links)))


def parse_command(text: str, what: str) -> tuple[str, ...]:
    """A command's words; it must be a Python program (`python ...` or `pytest ...`), without a shell."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as err:
        raise InputError(f"the {what} command {text!r} cannot be split into words: {err}") from None
    if not words:
        raise InputError(f"the {what} command is empty")
    shell = [w for w in words if w in SHELL_WORDS or w.startswith(("$(", "`"))]
    if shell:
        raise InputError(f"the {what} command {text!r} uses shell syntax ({shell[0]}): it runs as one program, "
                         "not through a shell; give stdin with --stdin FILE")
    if not (PYTHON_WORDS.match(words[0]) or words[0] == "pytest"):
        raise InputError(f"the {what} command must start with python or pytest (it runs on shake's Python, "
                         f"in the sandbox), not {words[0]!r}")
    return words


def interpreter_args(words: tuple[str, ...]) -> list[str]:
    """The words after the interpreter: `pytest ...` becomes `-m pytest ...`."""
    return ["-m", "pytest", *words[1:]] if words[0] == "pytest" else list(words[1:])


def named_files(words: tuple[str, ...]) -> list[str]:
    """The project files a command names: python's script argument; pytest's path arguments."""
    if words[0] == "pytest":
        return [w.split("::", 1)[0] for w in words[1:] if not w.startswith("-") and ("/" in w or w.endswith(".py"))]
    args = list(words[1:])
    while args:
        arg = args.pop(0)
        if arg in ("-c", "-m"):
            return []  # code or a module, not a file
        if arg in ("-W", "-X"):
            args = args[1:]
        elif not arg.startswith("-"):
            return [arg]
    return []


def check_command(words: tuple[str, ...], what: str, exposure: Exposure, script: str) -> None:
    """Refuse a command that names a file the run will not see, or that needs a module shake's Python lacks."""
    args = interpreter_args(words)
    if args[:1] == ["-m"] and len(args) > 1 and importlib.util.find_spec(args[1].split(".")[0]) is None:
        if not any(PurePosixPath(p).parts[0] == args[1].split(".")[0] for p in exposure.paths):
            raise InputError(f"the {what} command runs the module {args[1]}, which is not installed in shake's "
                             f"Python ({sys.executable}) nor in the project")
    known = exposure.paths | {script}
    for name in named_files(words):
        rel = PurePosixPath(os.path.normpath(name)).as_posix()
        if rel.startswith("../") or os.path.isabs(name) or not (rel in known or exposure.has_dir(rel)):
            raise InputError(f"the {what} command names {name}, which is not in the project at {exposure.root} "
                             "(paths are relative to the project root)")


def make_spec(script: Path, *, project: Path | None = None, run: str | None = None, check: str | None = None,
              stdin: Path | None = None, bounds: Bounds = Bounds()) -> tuple[RunSpec, Exposure]:
    """Check everything the user gave before a session starts; one `InputError` line for each problem."""
    root = find_root(script, project)
    rel = relative_script(root, script)
    if any(part in IGNORED_DIRS for part in PurePosixPath(rel).parts[:-1]):
        raise InputError(f"the script {rel} is inside a directory the project rules leave out "
                         f"({', '.join(sorted(IGNORED_DIRS))}); give --project a directory inside it")
    exposure = scan(root, bounds)
    run_words = parse_command(run, "run") if run else ("python", rel)
    check_words = parse_command(check, "check") if check else ()
    check_command(run_words, "run", exposure, rel)
    if check_words:
        check_command(check_words, "check", exposure, rel)
    stdin_path = None
    if stdin is not None:
        from engine.inputs import read_bytes

        read_bytes(Path(stdin), "stdin file", MAX_STDIN_BYTES)  # a regular file, no link, within the bound
        stdin_path = str(Path(stdin).resolve())
    return RunSpec(str(root), rel, run_words, check_words, stdin_path, bounds), exposure


def copy_into(spec: RunSpec, replaced: dict[str, str], dest: Path) -> Exposure:
    """The project's exposed files, copied into `dest` (created), world-readable, with `replaced`
    (relative path -> text: the proposed script) written over or beside them."""
    root = Path(spec.root)
    exposure = scan(root, spec.bounds)
    dest.mkdir(mode=0o755)
    os.chmod(dest, 0o755)  # the run's own uid reads it; the umask must not decide
    made = {""}
    for f in exposure.files:
        if f.path in replaced:
            continue
        _make_parents(dest, f.path, made)
        data = _read_file(root / f.path, spec.bounds.max_file_bytes)
        _write(dest / f.path, data, 0o755 if f.executable else 0o644)
    for path, text in replaced.items():
        _make_parents(dest, path, made)
        _write(dest / path, text.encode("utf-8"), 0o644)
    return exposure


def _read_file(path: Path, limit: int) -> bytes:
    """A project file's bytes, never through a link put there after the scan, at most `limit` of them
    (a file that grew after the scan keeps the bound)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


def _make_parents(dest: Path, path: str, made: set[str]) -> None:
    parent = PurePosixPath(path).parent.as_posix()
    parts = [] if parent == "." else PurePosixPath(parent).parts
    for i in range(len(parts)):
        sub = "/".join(parts[: i + 1])
        if sub not in made:
            (dest / sub).mkdir(mode=0o755, exist_ok=True)
            os.chmod(dest / sub, 0o755)
            made.add(sub)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def files_digest(root: Path, exposure: Exposure) -> str:
    """SHA-256 over the exposed files' paths and contents: which project state a prompt saw."""
    digest = hashlib.sha256()
    for f in exposure.files:
        digest.update(f.path.encode() + b"\0")
        try:
            digest.update(hashlib.sha256(_read_file(root / f.path, f.size)).digest())
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()
