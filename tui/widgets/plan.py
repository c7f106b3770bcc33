"""The plan: steps with their state and cycle count (vim keys move the cursor)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine.execution.sanitize import sanitize
from engine.store.schema import StallInfo
from tui.session_view import StepView, plural

ICONS = {"pending": "·", "running": "▶", "review": "?", "accepted": "✓", "stalled": "!", "skipped": "–"}
WORDS = {"pending": "to do", "running": "working", "review": "your review", "accepted": "accepted",
         "stalled": "stalled", "skipped": "skipped"}
LEGEND = "  ".join(f"{ICONS[k]} {WORDS[k]}" for k in ("running", "review", "accepted", "pending", "stalled", "skipped"))


class PlanView(OptionList):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="plan.down"),
        Binding("k", "cursor_up", "Up", show=False, id="plan.up"),
        Binding("g", "first", "First", show=False, id="plan.first"),
        Binding("G", "last", "Last", show=False, id="plan.last"),
    ]

    def show_steps(self, steps: tuple[StepView, ...], current: int, stall: StallInfo | None = None) -> None:
        self.clear_options()
        for i, step in enumerate(steps):
            text = Text()
            text.append(f"{ICONS.get(step.status, '·')} ", style="bold" if i == current else "")
            text.append(f"{step.number}. ")
            text.append(sanitize(step.text))  # model text: plain text, never markup nor terminal control
            if step.status == "stalled":
                detail = f"stalled after {plural(stall.attempts, 'attempt')}" if stall else "stalled"
            else:
                detail = f"{WORDS.get(step.status, step.status)} · {plural(step.cycles, 'cycle')}"
            text.append(f"\n   {detail}", style="dim")
            self.add_option(Option(text, id=f"step-{i}"))
        if steps:
            self.highlighted = min(current, len(steps) - 1)
