"""The `shake train` settings the app's form offers, checked by the trainer's own config.

Why built from `trainer.config.TrainConfig`: its fields carry each flag's type, default and help, and
its `validate()` is the one place that says what is allowed. The form shows a chosen subset, converts
what was typed to the field's type, and asks `validate()`; a flag the trainer does not have (yet) is
simply not shown. The values are remembered in `DATA/ui-state.json` and become `shake train` flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trainer.config import TrainConfig

STATE_KEY = "train_settings"
# The settings that matter most, in the order the form shows them (issue #15).
FORM_FIELDS = ("student", "init_from", "lam", "max_steps", "epochs", "lr", "kd_divergence", "kd_temperature",
               "eval_fraction", "sessions", "agents", "kinds")
LABELS = {"lam": "λ (odds-ratio weight)", "lr": "learning rate", "max_steps": "steps (0: from epochs)",
          "kd_divergence": "KD divergence", "kd_temperature": "KD temperature", "eval_fraction": "held-out share",
          "init_from": "init from (a run)", "sessions": "rows: sessions", "agents": "rows: agents",
          "kinds": "rows: rejected kinds"}
CHOICES = {"kd_divergence": ("forward", "reverse", "jsd")}


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    help: str
    kind: type
    default: object
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def form_fields() -> list[FormField]:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = []
    for name in FORM_FIELDS:
        f = fields.get(name)
        if f is None:
            continue
        kind = {"int": int, "float": float, "str": str, "bool": bool}.get(
            f.type if isinstance(f.type, str) else f.type.__name__, str)
        if kind is bool:
            continue  # a switch, not a value: not in this form
        out.append(FormField(name, LABELS.get(name, name.replace("_", " ")), f.metadata.get("help", ""), kind,
                             f.default, CHOICES.get(name, ())))
    return out


class SettingsError(ValueError):
    """A value the trainer would refuse, in words for the form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse(values: dict[str, str]) -> dict[str, object]:
    """Typed values from the form's text (empty means the default); raises `SettingsError`."""
    from trainer.errors import TrainError

    typed: dict[str, object] = {}
    for field in form_fields():
        text = str(values.get(field.name, "")).strip()
        if not text:
            continue
        if field.choices and text not in field.choices:
            raise SettingsError(field.name, f"{field.label}: one of {', '.join(field.choices)}")
        try:
            value = field.kind(text)
        except ValueError:
            noun = "a whole number" if field.kind is int else "a number"
            raise SettingsError(field.name, f"{field.label}: {text!r} is not {noun}") from None
        if isinstance(value, float) and value != value:
            raise SettingsError(field.name, f"{field.label}: must be a number, not nan")
        typed[field.name] = value
    try:
        TrainConfig(**typed).validate()
    except TrainError as err:
        message = str(err)
        culprit = next((f.name for f in form_fields() if f.flag in message), "")
        raise SettingsError(culprit, in_form_words(message)) from None
    return typed


def in_form_words(message: str) -> str:
    """The trainer's message with its flags as the form labels them (`--max-steps >= 0` reads
    `“steps (0: from epochs)” must be >= 0`): the form shows labels, not flags."""
    for field in sorted(form_fields(), key=lambda f: len(f.flag), reverse=True):
        message = message.replace(field.flag, f"“{field.label}”")
    return message.replace("” >=", "” must be >=").replace("” >", "” must be >").replace(
        "must be must be", "must be")


def to_args(typed: dict[str, object]) -> list[str]:
    """`shake train` flags for the values that differ from the defaults."""
    args = []
    for field in form_fields():
        if field.name in typed and typed[field.name] != field.default:
            args += [field.flag, str(typed[field.name])]
    return args


def summary(typed: dict[str, object]) -> str:
    if not typed:
        return "defaults (c changes them)"
    shown = [f"{f.label} {typed[f.name]}" for f in form_fields() if f.name in typed and typed[f.name] != f.default]
    return (" · ".join(shown) or "defaults") + " (c changes them)"


def load(ui_state) -> dict[str, str]:
    data = ui_state.get(STATE_KEY) or {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
