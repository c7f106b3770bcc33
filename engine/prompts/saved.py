"""Saved prompt versions: the one owner of `DATA/prompts/<version>.json`.

`shake prompts optimize` and `shake prompts add` write a version here; `[prompts] worker =
"worker-3f2a9c01b2d4"` pins it. A file is named by its version, which is the hash of its content, so
loading one checks that it is what its name says: an edited or corrupt file, or one saved for an
answer shape or templates this shake no longer speaks, is refused with the reason, never used
half-right. Files are written atomically and never changed afterwards (same content, same name).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from engine.agents.shapes import SHAPES
from engine.errors import ConfigError
from engine.prompts import builtin
from engine.prompts.book import VERSION_DIGITS, AgentPrompt, Demo
from engine.store.atomic import atomic_write_text

SUBDIR = "prompts"
VERSION_NAME = re.compile(rf"^(?P<agent>[a-z_]+)-[0-9a-f]{{{VERSION_DIGITS}}}$")


def prompts_dir(data_dir: Path) -> Path:
    return Path(data_dir) / SUBDIR


def is_version_name(text: str, agent: str | None = None) -> bool:
    match = VERSION_NAME.match(text)
    return bool(match) and (agent is None or match.group("agent") == agent)


@dataclass(frozen=True)
class SavedPrompt:
    prompt: AgentPrompt
    created_at: str
    note: dict  # how it was made: the optimizer's scores, the source file, ...

    @property
    def version(self) -> str:
        return self.prompt.version


def save_prompt(data_dir: Path, prompt: AgentPrompt, *, created_at: str, note: dict | None = None) -> Path:
    directory = prompts_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prompt.version}.json"
    if path.exists():  # same name, same content: written once
        return path
    body = {"version": prompt.version, "agent": prompt.agent, "instructions": prompt.instructions,
            "shape": prompt.shape.name, "templates": builtin.TEMPLATE_REVISION,
            "demos": [d.as_dict() for d in prompt.demos], "created_at": created_at, "note": note or {}}
    atomic_write_text(path, json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    return path


def load_prompt(data_dir: Path, version: str) -> SavedPrompt:
    path = prompts_dir(data_dir) / f"{version}.json"
    where = f"prompt version '{version}'"
    if not is_version_name(version):
        raise ConfigError(f"{where} is not a version name (AGENT-{'h' * VERSION_DIGITS})")
    if not path.is_file():
        known = ", ".join(s.version for s in list_prompts(data_dir)) or "none saved yet"
        raise ConfigError(f"{where} is not in {prompts_dir(data_dir)} (saved: {known}); "
                          "`shake prompts list` shows them")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        agent, shape_name = body["agent"], body["shape"]
        demos = tuple(Demo(str(d["user"]), dict(d["fields"])) for d in body["demos"])
        instructions, templates = str(body["instructions"]), int(body["templates"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a saved prompt ({type(err).__name__}: {err})") from None
    shape = SHAPES.get(agent)
    if shape is None or shape.name != shape_name or templates != builtin.TEMPLATE_REVISION:
        current = shape.name if shape else "no such agent"
        raise ConfigError(f"{where} was saved for {shape_name} (templates r{templates}); this shake speaks {current} "
                          f"(templates r{builtin.TEMPLATE_REVISION}): optimize again or unpin it in [prompts]")
    prompt = AgentPrompt(agent, instructions, shape, demos, origin="saved")
    if prompt.version != version:
        raise ConfigError(f"{path} does not hash to its name (it was edited or is corrupt); "
                          "save an edited prompt with `shake prompts add`")
    return SavedPrompt(prompt, str(body.get("created_at", "")), dict(body.get("note") or {}))


def list_prompts(data_dir: Path) -> list[SavedPrompt]:
    """Every usable saved version, oldest first (`unusable_prompts` says why the others are not)."""
    out = []
    for path in sorted(prompts_dir(data_dir).glob("*.json")):
        try:
            out.append(load_prompt(data_dir, path.stem))
        except ConfigError:
            continue
    return sorted(out, key=lambda s: (s.created_at, s.version))


def unusable_prompts(data_dir: Path) -> list[tuple[Path, str]]:
    """Files in the prompts directory that cannot be pinned, each with the reason."""
    out = []
    for path in sorted(prompts_dir(data_dir).glob("*.json")):
        try:
            load_prompt(data_dir, path.stem)
        except ConfigError as err:
            out.append((path, str(err)))
    return out
