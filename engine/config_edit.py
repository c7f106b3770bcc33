"""Edits to the user's config file that keep what they wrote: comments, order, formatting.

Why `tomlkit`: the file is the user's; rewriting it from parsed values would drop their comments and
reorder their tables. The edit is checked by `engine.config.parse_config` (the one validator) before
it is written, atomically, to the file the link points at when the config is a symlink (dotfiles).

`add_teacher` writes `[teachers.NAME]` after the last teacher table and puts NAME first in the
worker's list, keeping every teacher it had as the fallback. Teachers and agents that were in effect
only as defaults (no `[teachers]` or no `[agents]` in the file) are written out first, so that adding
one teacher never silently changes who else runs.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import tomlkit
from tomlkit.items import AoT, Array, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from engine.config import DEFAULT_CONFIG_TOML, Config, TeacherConfig, parse_config
from engine.errors import ConfigError, InputError
from engine.store.atomic import atomic_write_text

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_DEFAULTS = TeacherConfig(name="")


def teacher_table(teacher: TeacherConfig, comment: str = "") -> Table:
    """The keys that differ from the defaults, plus `backend` and `model` (which say what it is)."""
    table = tomlkit.table()
    if comment:
        table.add(tomlkit.comment(comment))
    for f in dataclasses.fields(TeacherConfig):
        if f.name == "name":
            continue
        value = getattr(teacher, f.name)
        if f.name in ("backend", "model") or value != getattr(_DEFAULTS, f.name):
            table[f.name] = value
    return table


def _move_trailing_trivia(src: Table, dst: Table) -> None:
    """Comments and blank lines at the end of a table introduce what follows it in the file (the
    `[agents]` comment after the last teacher, say): they move below the table inserted there."""
    body = src.value.body
    trailing = []
    while body and body[-1][0] is None and isinstance(body[-1][1], (Comment, Whitespace)):
        trailing.insert(0, body.pop()[1])
    if not trailing:
        return
    if not isinstance(trailing[0], Whitespace):
        dst.add(tomlkit.nl())
    for item in trailing:
        dst.value.body.append((None, item))


def _set_teacher(doc: TOMLDocument, name: str, table: Table) -> None:
    teachers = doc.get("teachers")
    if teachers is None:
        teachers = tomlkit.table(is_super_table=True)
        doc["teachers"] = teachers
    if name in teachers:  # --force: replaced where it stood, keeping what introduces the next table
        if isinstance(teachers[name], Table):
            _move_trailing_trivia(teachers[name], table)
        teachers[name] = table
        return
    tables = [v for v in teachers.values() if isinstance(v, Table)]
    if tables:
        _move_trailing_trivia(tables[-1], table)
    else:
        table.add(tomlkit.nl())
    teachers[name] = table


def slug(model: str) -> str:
    """A teacher name from a model name: `qwen2.5-coder:7b` -> `qwen2.5-coder-7b`,
    `hf.co/bartowski/Coder-GGUF:Q4_K_M` -> `coder-gguf-q4_k_m`."""
    base = model.rsplit("/", 1)[-1].lower()
    base = base.removesuffix(":latest")
    text = re.sub(r"[^a-z0-9_.-]+", "-", base).strip("-.") or "teacher"
    return text[:56]


def free_name(wanted: str, taken: set[str] | list[str] | dict) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... whichever is not configured yet."""
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}-{n}"
    return name


def add_teacher(path: Path, teacher: TeacherConfig, *, force: bool = False, comment: str = "") -> Config:
    """Write `[teachers.NAME]` (NAME = `teacher.name`) and make it the worker's first teacher.

    Returns the configuration as it now stands on disk. Raises `InputError` for a bad or taken name
    (without `force`), `ConfigError` when the file does not parse now or would not after the edit;
    the file is unchanged then.
    """
    name = teacher.name
    if not NAME.fullmatch(name):
        raise InputError(f"teacher name {name!r}: use letters, digits, '_', '-' and '.' (at most 64)")
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        raise ConfigError(f"{path} is a directory; SHAKE_CONFIG must name a TOML file")
    text = target.read_text(encoding="utf-8") if target.exists() else DEFAULT_CONFIG_TOML
    before = parse_config(text, path)
    if name in before.teachers and not force:
        raise InputError(f"a teacher named '{name}' is already configured in {path}; "
                         "pass --force to replace it, or choose another name")
    try:
        doc = tomlkit.parse(text)
    except Exception as err:  # tomlkit's errors have no common public base
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    if isinstance(doc.get("teachers"), AoT):
        raise ConfigError(f"{path}: [teachers] must be a table of named teachers")

    # Teachers that were in effect only as defaults become explicit before another one joins them.
    if "teachers" not in doc:
        for other in before.teachers.values():
            _set_teacher(doc, other.name, teacher_table(other))
    _set_teacher(doc, name, teacher_table(teacher, comment))

    worker = [name] + [n for n in before.agents["worker"] if n != name]
    if "agents" not in doc:
        agents = tomlkit.table()
        for agent, names in before.agents.items():
            agents[agent] = worker if agent == "worker" else list(names)
        doc.add(tomlkit.nl())
        doc["agents"] = agents
    elif isinstance(array := doc["agents"].get("worker"), Array) and ("#" in array.as_string() or "\n" in array.as_string()):
        for i in reversed(range(len(array))):  # edited in place: the user's comments in it stay
            if array[i] == name:
                del array[i]
        array.insert(0, name)
    else:
        doc["agents"]["worker"] = worker

    new_text = tomlkit.dumps(doc)
    after = parse_config(new_text, path)
    expected = {a: (worker if a == "worker" else names) for a, names in before.agents.items()}
    if after.agents != expected or set(after.teachers) != set(before.teachers) | {name}:
        raise ConfigError(f"{path}: editing it would change more than the teacher '{name}'; "
                          f"add [teachers.{name}] by hand (see `shake config --defaults`)")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, new_text)
    return after


def pin_prompt(path: Path, agent: str, version: str) -> Config:
    """Write `[prompts] AGENT = "VERSION"` (`shake prompts optimize --pin`), keeping everything else as it is."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        raise ConfigError(f"{path} is a directory; SHAKE_CONFIG must name a TOML file")
    text = target.read_text(encoding="utf-8") if target.exists() else DEFAULT_CONFIG_TOML
    parse_config(text, path)  # the file must be valid before it is edited
    try:
        doc = tomlkit.parse(text)
    except Exception as err:  # tomlkit's errors have no common public base
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    if "prompts" not in doc:
        doc.add(tomlkit.nl())
        doc["prompts"] = tomlkit.table()
    doc["prompts"][agent] = version
    new_text = tomlkit.dumps(doc)
    after = parse_config(new_text, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, new_text)
    return after
