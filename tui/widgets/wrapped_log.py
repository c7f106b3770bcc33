"""A log that wraps long lines at its width and grows at its end (streamed tokens, run logs).

Why not Textual's `Log`: it never wraps, so a long line of model output is cut at the right edge.
Why not `RichLog(wrap=True)`: it only appends whole lines, and streamed text grows the last line a
few characters at a time. Here each logical line keeps its wrapped rows; appending re-wraps only
the last line, and a change of width re-wraps everything once, so a worker streaming tokens never
makes the screen re-render what it already shows.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate
from typing import Iterable

from rich.cells import cell_len
from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(line: str) -> str:
    """Tabs as spaces; other control characters as �, so that nothing can move the cursor."""
    return _CONTROL.sub("\ufffd", line.expandtabs(4))


def wrap_line(line: str, width: int) -> list[str]:
    """Rows of at most `width` cells; a break falls after the last space of a row when there is one
    in its second half (code keeps its indentation, prose breaks between words)."""
    if width <= 0 or cell_len(line) <= width:
        return [line]
    rows: list[str] = []
    rest = line
    while cell_len(rest) > width:
        cut, used = 0, 0
        for i, char in enumerate(rest):
            w = cell_len(char)
            if used + w > width:
                break
            used += w
            cut = i + 1
        if cut == 0:
            cut = 1  # a character wider than the pane: it gets a row of its own, cut at the edge
        space = rest.rfind(" ", 0, cut)
        if space >= cut // 2 and space > 0:
            cut = space + 1
        rows.append(rest[:cut])
        rest = rest[cut:]
    rows.append(rest)
    return rows


class WrappedLog(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    WrappedLog {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    def __init__(self, *, max_lines: int | None = None, auto_scroll: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.auto_scroll = auto_scroll
        self._lines: list[str] = []  # logical lines; the last one may still grow
        self._open = False  # the last logical line has no line ending yet
        self._rows: list[list[str]] = []  # each logical line's wrapped rows at `_wrap_width`
        self._row_count = 0
        self._wrap_width = 0
        self._starts: list[int] | None = None  # first row of each logical line, rebuilt when needed

    # -- content ------------------------------------------------------------------------------
    @property
    def lines(self) -> list[str]:
        """The logical lines (unwrapped), the last one possibly unfinished."""
        return self._lines

    @property
    def text(self) -> str:
        return "\n".join(self._lines) + ("" if self._open or not self._lines else "\n")

    def clear(self) -> None:
        self._lines, self._rows, self._open, self._row_count, self._starts = [], [], False, 0, None
        self._update_size()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def write(self, data: str) -> None:
        """Append text; it continues the last line until a newline ends it."""
        if not data:
            return
        width = self._width()
        parts = data.split("\n")
        for i, part in enumerate(parts):
            if i == 0 and self._open:
                self._lines[-1] += part
                self._rewrap(len(self._lines) - 1, width)
            elif i < len(parts) - 1 or part:
                self._append(part, width)
            if i < len(parts) - 1:
                self._open = False
            elif part:
                self._open = True
        self._after_write()

    def write_lines(self, lines: Iterable[str]) -> None:
        width = self._width()
        for line in lines:
            self._open = False
            self._append(line, width)
        self._open = False
        self._after_write()

    def _append(self, line: str, width: int) -> None:
        self._lines.append(line)
        rows = wrap_line(clean(line), width)
        self._rows.append(rows)
        self._row_count += len(rows)

    def _rewrap(self, index: int, width: int) -> None:
        old = len(self._rows[index])
        self._rows[index] = wrap_line(clean(self._lines[index]), width)
        self._row_count += len(self._rows[index]) - old

    def _after_write(self) -> None:
        self._starts = None
        if self.max_lines is not None and len(self._lines) > self.max_lines:
            drop = len(self._lines) - self.max_lines
            self._row_count -= sum(len(r) for r in self._rows[:drop])
            del self._lines[:drop], self._rows[:drop]
        at_end = self.is_vertical_scroll_end
        self._update_size()
        if self.auto_scroll and at_end and not self.is_vertical_scrollbar_grabbed:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    # -- geometry -----------------------------------------------------------------------------
    def _width(self) -> int:
        width = self.scrollable_content_region.width or self.size.width
        if width and width != self._wrap_width:
            self._wrap_width = width
            self._rows = [wrap_line(clean(line), width) for line in self._lines]
            self._row_count = sum(len(r) for r in self._rows)
            self._starts = None
        return self._wrap_width

    def _update_size(self) -> None:
        self.virtual_size = Size(self._wrap_width, self._row_count)

    def on_resize(self) -> None:
        self._width()
        self._update_size()
        if self.auto_scroll:
            self.scroll_end(animate=False, x_axis=False)

    def _line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0, *accumulate(len(r) for r in self._rows)][:-1] if self._rows else []
        return self._starts

    def row_of_line(self, index: int) -> int:
        """The first wrapped row of logical line `index` (for scrolling to a search hit)."""
        starts = self._line_starts()
        return starts[index] if 0 <= index < len(starts) else 0

    def render_line(self, y: int) -> Strip:
        style = self.rich_style
        width = self.scrollable_content_region.width or self.size.width
        row = self.scroll_offset.y + y
        if row < 0 or row >= self._row_count:
            return Strip.blank(width, style)
        starts = self._line_starts()
        index = bisect_right(starts, row) - 1
        text = self._rows[index][row - starts[index]]
        return Strip([Segment(text, style)]).crop_extend(0, width, style)
