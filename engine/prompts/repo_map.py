"""A small repo map for the lead and the worker: what the script imports from its project.

A script that calls `load_sales(path)` from a sibling module cannot be changed well by an agent that
has never seen that function. The map gives, for each project module the script imports, its
docstring's first line and its top-level signatures (functions, classes and their methods, each with
its docstring's first line), never the bodies: enough to call the module right, cheap in tokens.

The map is bounded (`max_chars`, about four characters a token): modules are given in import order
until the budget is spent; a module that does not fit is cut at a line and the rest are named as left
out. What was given (`RepoMap.modules`, each with the SHA-256 of the file it was read from) is stored
with the row's prompt, so that a row's context can be told and rebuilt.

Only files inside the project, under its ignore rules (`engine.execution.project`), are read, never
through a symbolic link; a module that does not parse is named with its syntax error.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.execution.project import IGNORED_DIRS

MAX_MAP_CHARS = 6000  # about 1,500 tokens
MAX_MODULE_BYTES = 1 << 20
HEADER = "Project modules the script imports (signatures and docstrings only):"


@dataclass(frozen=True)
class ModuleRef:
    """One project module whose signatures a prompt was given."""

    path: str  # relative to the project root, POSIX
    sha256: str  # of the file as it was read


@dataclass(frozen=True)
class RepoMap:
    text: str  # "" when the script imports nothing from its project
    modules: tuple[ModuleRef, ...]  # the modules given, in order (the last one may be cut)
    left_out: tuple[str, ...]  # modules found but over the budget


def imported_modules(script: str) -> list[tuple[int, str]]:
    """(level, dotted name) of every module an import statement of `script` may load, in order."""
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError):
        return []
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.append((node.level, base))
            # `from pkg import name`: name may be a submodule
            found += [(node.level, f"{base}.{a.name}" if base else a.name) for a in node.names if a.name != "*"]
    seen, ordered = set(), []
    for item in found:
        if item not in seen and item[1]:
            seen.add(item)
            ordered.append(item)
    return ordered


def _inside(root: Path, path: Path) -> str | None:
    """`path` relative to the root when it is a regular file under it, not ignored, reached without a link."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink() or part in IGNORED_DIRS:
            return None
    return rel.as_posix() if path.is_file() else None


def resolve(root: Path, script_rel: str, level: int, name: str) -> str | None:
    """The project file a module name loads, searched from the script's directory, then the root."""
    script_dir = (root / script_rel).parent
    parts = name.split(".")
    if level:
        base = script_dir
        for _ in range(level - 1):
            base = base.parent
        bases = [base]
    else:
        bases = [script_dir, root] if script_dir != root else [root]
    for base in bases:
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            rel = _inside(root, candidate)
            if rel is not None and rel != script_rel:
                return rel
    return None


def _first_line(node: ast.AST) -> str:
    doc = ast.get_docstring(node, clean=True) if isinstance(
        node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
    return doc.strip().splitlines()[0][:200] if doc and doc.strip() else ""


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"


def summarize(path: str, source: str) -> str:
    """One module's map block: its docstring's first line and its top-level signatures."""
    lines = [f"# {path}"]
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as err:
        return "\n".join(lines + [f"# (does not parse: {getattr(err, 'msg', err)})"])
    if doc := _first_line(tree):
        lines.append(f'"""{doc}"""')
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines.append(_signature(node))
            if doc := _first_line(node):
                lines.append(f'    """{doc}"""')
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            lines.append(f"class {node.name}({bases}):" if bases else f"class {node.name}:")
            if doc := _first_line(node):
                lines.append(f'    """{doc}"""')
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name == "__init__"):
                    lines.append(f"    {_signature(item)}")
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    lines.append(f"    {item.target.id}: {ast.unparse(item.annotation)}")
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            value = ast.unparse(node.value)
            lines.append(f"{' = '.join(t.id for t in node.targets)} = {value if len(value) <= 60 else '...'}")
    return "\n".join(lines)


def _read(root: Path, rel: str) -> bytes | None:
    try:
        fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size > MAX_MODULE_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_MODULE_BYTES + 1)
    finally:
        os.close(fd)


def build(root: Path | str, script_rel: str, script: str, *, max_chars: int = MAX_MAP_CHARS) -> RepoMap:
    """The map of the project modules `script` imports, at most `max_chars` characters long."""
    root = Path(root)
    found: list[str] = []
    for level, name in imported_modules(script):
        rel = resolve(root, script_rel, level, name)
        if rel is not None and rel not in found:
            found.append(rel)
    if not found:
        return RepoMap("", (), ())
    text, given = HEADER, []
    left_out: list[str] = []
    for i, rel in enumerate(found):
        data = _read(root, rel)
        if data is None:
            continue
        block = summarize(rel, data.decode("utf-8", errors="replace"))
        room = max_chars - len(text) - 1 - len(_left_out_line(found[i + 1:]))
        if room <= len(f"# {rel}"):
            left_out = found[i:]
            break
        cut = len(block) > room
        if cut:  # this module is cut at a line, and the budget ends with it
            kept = ""
            for line in block.splitlines():
                if len(kept) + len(line) + 1 + len("\n...") > room:
                    break
                kept += ("\n" if kept else "") + line
            if not kept:
                left_out = found[i:]
                break
            block = kept + "\n..."
        text += "\n" + block
        given.append(ModuleRef(rel, hashlib.sha256(data).hexdigest()))
        if cut:
            left_out = found[i + 1:]
            break
    if left_out:
        text += _left_out_line(left_out)
    if not given:
        text = ""
    return RepoMap(text[:max_chars], tuple(given), tuple(left_out))


def _left_out_line(names: list[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(PurePosixPath(n).as_posix() for n in names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"\n(left out for length: {shown}{more})"
