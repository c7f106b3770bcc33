"""The worker's teachers for a new session: ticked ones in order, ticks written as text.

Why text and not colour: a tick shown only by colour is invisible in some themes and terminals, and
a space that silently unticks the only teacher loses the user's choice. Each line reads `[x]` or
`[ ]`, and the line below the list says, in words, who the worker will use. Printable keys typed
here are not swallowed: they go to the change request (see `ForwardsTyping`), where the user meant them.
Models found on this machine (discovery) are listed after the configured teachers; ticking one adds
it to the config when the session starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.widgets.typing import ForwardsTyping

if TYPE_CHECKING:
    from engine.teachers.discovery import FoundModel


@dataclass
class TeacherChoice:
    name: str  # the configured name, or the name a found model gets when it is added
    label: str  # backend and model, in words
    ticked: bool = False
    found: FoundModel | None = field(default=None)  # not configured yet: added at Start


class TeacherList(ForwardsTyping, OptionList):
    BINDINGS = [
        Binding("space", "toggle", "Tick/untick", id="new_session.toggle_teacher"),
        Binding("shift+up", "move(-1)", "Move up", id="new_session.teacher_up"),
        Binding("shift+down", "move(1)", "Move down", id="new_session.teacher_down"),
    ]

    def action_toggle(self) -> None:
        self.parent.toggle(self.highlighted)  # type: ignore[union-attr]

    def action_move(self, delta: int) -> None:
        self.parent.move(self.highlighted, delta)  # type: ignore[union-attr]


class TeacherPicker(Vertical):
    def __init__(self, choices: list[TeacherChoice], **kwargs) -> None:
        super().__init__(**kwargs)
        self.choices = choices

    def compose(self):
        yield TeacherList(id="teacher-list")
        yield Static("", id="teacher-summary")

    def on_mount(self) -> None:
        self._render_choices(0)

    @property
    def ticked(self) -> list[TeacherChoice]:
        return [c for c in self.choices if c.ticked]

    def add_found(self, choices: list[TeacherChoice]) -> None:
        """Models discovery found that are not configured yet, after the configured ones."""
        known = {c.name for c in self.choices} | {c.found.source for c in self.choices if c.found}
        self.choices += [c for c in choices if c.name not in known and c.found and c.found.source not in known]
        self._render_choices(self.query_one(TeacherList).highlighted or 0)

    def toggle(self, index: int | None) -> None:
        if index is None:
            return
        self.choices[index].ticked = not self.choices[index].ticked
        self._render_choices(index)

    def move(self, index: int | None, delta: int) -> None:
        if index is None or not 0 <= index + delta < len(self.choices):
            return
        self.choices[index], self.choices[index + delta] = self.choices[index + delta], self.choices[index]
        self._render_choices(index + delta)

    def _render_choices(self, highlighted: int) -> None:
        listing = self.query_one(TeacherList)
        listing.clear_options()
        for choice in self.choices:
            line = Text()
            line.append("[x] " if choice.ticked else "[ ] ", style="bold")
            line.append(choice.name)
            line.append(f"  {choice.label}", style="dim")
            if choice.found is not None:
                line.append("  found on this machine: ticking adds it to the config", style="italic")
            listing.add_option(Option(line))
        if self.choices:
            listing.highlighted = max(0, min(highlighted, len(self.choices) - 1))
        summary = self.query_one("#teacher-summary", Static)
        names = [c.name for c in self.ticked]
        if names:
            summary.update(Text(f"The worker uses: {' → '.join(names)}   (space ticks, shift+↑/↓ orders)"))
            summary.set_class(False, "warning-text")
        else:
            summary.update(Text("No teacher ticked: tick at least one with space"))
            summary.set_class(True, "warning-text")
