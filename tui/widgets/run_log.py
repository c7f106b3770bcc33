"""The run log: wrapped, capped, follow mode, search; vim keys to scroll."""

from __future__ import annotations

from textual.binding import Binding

from engine.execution.sanitize import sanitize
from tui.widgets.wrapped_log import WrappedLog

MAX_LINES = 5000


class RunLog(WrappedLog):
    BINDINGS = [
        Binding("j", "scroll_down", "Down", show=False, id="log.down"),
        Binding("k", "scroll_up", "Up", show=False, id="log.up"),
        Binding("g", "scroll_home", "Top", show=False, id="log.top"),
        Binding("G", "scroll_end", "Bottom", show=False, id="log.bottom"),
        # The session screen's log keys, in the footer while the log has the focus (see `DiffPane`).
        Binding("f", "screen.toggle_follow", "Follow", id="session.follow_log"),
        Binding("slash", "screen.search_log", "Search", id="session.search_log"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, **kwargs)
        self._search_from = 0

    @property
    def follow(self) -> bool:
        return self.auto_scroll

    def toggle_follow(self) -> bool:
        self.auto_scroll = not self.auto_scroll
        if self.auto_scroll:
            self.scroll_end(animate=False)
        return self.auto_scroll

    def show_text(self, text: str) -> None:
        self.clear()
        self._search_from = 0
        self.write_lines(sanitize(text).splitlines())

    def search(self, needle: str) -> int | None:
        """Scroll to the next line containing `needle` (case-insensitive); its index, or None."""
        needle = needle.lower()
        lines = self.lines
        for offset in range(len(lines)):
            i = (self._search_from + offset) % max(len(lines), 1)
            if needle in lines[i].lower():
                self._search_from = i + 1
                self.auto_scroll = False
                self.scroll_to(y=max(0, self.row_of_line(i) - 2), animate=False)
                return i
        return None
