"""Status bar: teachers in use and reachable, dataset rows, the step's attempts, what the engine does."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.session_view import plural


class StatusBar(Static):
    # layout: a longer line may need the second row the stylesheet allows (80 columns cut it)
    teachers: reactive[str] = reactive("", layout=True)
    rows: reactive[int] = reactive(0, layout=True)
    attempts: reactive[str] = reactive("", layout=True)
    activity: reactive[str] = reactive("idle", layout=True)
    author: reactive[str] = reactive("", layout=True)

    def render(self) -> Text:
        parts = [f"⚙ {self.activity}", f"teachers: {self.teachers or '…'}", f"dataset: {plural(self.rows, 'row')}"]
        if self.attempts:
            parts.append(self.attempts)
        if self.author:
            parts.append(f"proposal by {self.author}")
        return Text("  │  ".join(parts))  # plain text: names from config never become markup
