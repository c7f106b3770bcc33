"""The proposed script against the current one: split or unified, next and previous change."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static
from textual_diff_view import DiffView

from engine.execution.sanitize import sanitize


class DiffPane(VerticalScroll):
    # The session screen's diff keys, in the footer while the diff has the focus. They work from every
    # tab: the screen binds them too, hidden, under the same ids, so one remap under [ui.keys] moves both.
    BINDINGS = [
        Binding("s", "screen.toggle_split", "Split", id="session.toggle_split"),
        Binding("n", "screen.next_change", "Next", id="session.next_change"),
        Binding("p", "screen.previous_change", "Prev", id="session.previous_change"),
        Binding("d", "screen.copy_diff", "Copy diff", id="session.copy_diff"),
    ]
    split: reactive[bool] = reactive(True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.before = ""
        self.after = ""
        self._change = -1

    def compose(self):
        yield Static("No proposal yet.", classes="placeholder")

    async def show(self, before: str, after: str) -> None:
        self.before, self.after = before, after
        self._change = -1
        await self.remove_children()
        if before == after:
            await self.mount(Static("The proposal is identical to the current script.", classes="placeholder"))
            return
        await self.mount(DiffView("current/script.py", "proposed/script.py", sanitize(before), sanitize(after), split=self.split,
                                  annotations=True))

    async def clear(self) -> None:
        """No proposal: what a new session shows until its first one."""
        self.before = self.after = ""
        self._change = -1
        await self.remove_children()
        await self.mount(Static("No proposal yet.", classes="placeholder"))

    def watch_split(self, split: bool) -> None:
        for view in self.query(DiffView):
            view.split = split

    def jump(self, delta: int) -> int:
        groups = list(self.query(".diff-group"))
        if not groups:
            return -1
        self._change = max(0, min(len(groups) - 1, self._change + delta))
        self.scroll_to_widget(groups[self._change], top=True)
        return self._change
