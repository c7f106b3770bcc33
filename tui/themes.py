"""Themes: TOML files in the repository's `themes/` folder (and the user's), loaded into Textual `Theme`s.

The chosen theme is remembered in `DATA/ui-state.json`, not written into the user's config file.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from textual.theme import Theme

from engine.config import config_path
from engine.errors import ConfigError
from engine.store.atomic import atomic_write_text

BUNDLED = Path(__file__).resolve().parent.parent / "themes"
FIELDS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "success", "warning", "error")


def theme_dirs() -> list[Path]:
    return [BUNDLED, config_path().parent / "themes"]


def load_theme(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as err:
        raise ConfigError(f"theme {path} cannot be read: {err}") from None
    if "name" not in data or "primary" not in data:
        raise ConfigError(f"theme {path} needs at least `name` and `primary`")
    unknown = set(data) - set(FIELDS) - {"name", "dark", "variables"}
    if unknown:
        raise ConfigError(f"theme {path}: unknown keys {', '.join(sorted(unknown))}")
    return Theme(
        name=data["name"],
        dark=bool(data.get("dark", True)),
        variables=dict(data.get("variables", {})),
        **{k: data[k] for k in FIELDS if k in data},
    )


def load_themes() -> list[Theme]:
    themes = []
    for folder in theme_dirs():
        if folder.is_dir():
            themes += [load_theme(p) for p in sorted(folder.glob("*.toml"))]
    return themes


class UIState:
    """Small remembered settings (theme, feedback history) in the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "ui-state.json"
        try:
            self.data = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (json.JSONDecodeError, OSError):
            self.data = {}

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def set(self, key: str, value) -> None:
        self.data[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.data))
        except Exception:
            pass  # remembering a preference must never break the app
