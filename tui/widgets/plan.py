"""The plan: steps with their state and cycle count (vim keys move the cursor)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine.execution.sanitize import sanitize
from engine.store.schema import PlanStep

ICONS = {"pending": "·", "running": "▶", "review": "?", "accepted": "✓"}


class PlanView(OptionList):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="plan.down"),
        Binding("k", "cursor_up", "Up", show=False, id="plan.up"),
        Binding("g", "first", "First", show=False, id="plan.first"),
        Binding("G", "last", "Last", show=False, id="plan.last"),
    ]

    def show_steps(self, steps: list[PlanStep], current: int) -> None:
        self.clear_options()
        for i, step in enumerate(steps):
            text = Text()
            status = step.status.value
            text.append(f"{ICONS.get(status, '·')} ", style="bold" if i == current else "")
            text.append(f"{i + 1}. ")
            text.append(sanitize(step.text))  # model text: appended as plain text, never parsed as markup
            text.append(f"\n   {status} · {step.cycles} cycle{'s' if step.cycles != 1 else ''}", style="dim")
            self.add_option(Option(text, id=f"step-{i}"))
        if steps:
            self.highlighted = min(current, len(steps) - 1)
