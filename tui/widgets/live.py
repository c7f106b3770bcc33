"""What the agents are doing now: the instruction, and the teachers' output as it streams.

Tokens arrive far faster than a screen needs to change: they are buffered and appended to a
`WrappedLog` (which wraps long lines and re-renders only the line that grows) at most 20 times a
second, so that a streaming worker never makes the keyboard wait. A banner above says what the
session is waiting for when nothing streams (planning, a stalled step, no session).
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from tui.widgets.wrapped_log import WrappedLog

FLUSH_INTERVAL_S = 0.05
MAX_LINES = 4000


class LivePane(Vertical):
    def compose(self):
        banner = Static("", id="live-banner")
        banner.display = False
        yield banner
        with VerticalScroll(id="live-instruction-box"):
            yield Static("", id="live-instruction", classes="section")
        yield WrappedLog(max_lines=MAX_LINES, id="live-stream")

    def on_mount(self) -> None:
        self._agent = ""
        self._pending: list[str] = []
        self.set_interval(FLUSH_INTERVAL_S, self.flush)

    @property
    def text(self) -> str:
        return self.query_one(WrappedLog).text + "".join(self._pending)

    @property
    def banner(self) -> str:
        banner = self.query_one("#live-banner", Static)
        return str(banner.render()) if banner.display else ""

    def show_banner(self, text: Text | str, kind: str = "info") -> None:
        """A line that stays until the next one replaces it: `kind` is info, warning or error."""
        banner = self.query_one("#live-banner", Static)
        banner.update(text if isinstance(text, Text) else Text(text))
        banner.set_classes(f"banner-{kind}")
        banner.display = True

    def hide_banner(self) -> None:
        self.query_one("#live-banner", Static).display = False

    def set_instruction(self, text: str, cycle: int, teacher: str) -> None:
        body = Text()
        body.append(f"Instruction (cycle {cycle}, worker: {teacher})\n", style="bold")
        body.append(text)  # plain text: model output never becomes markup
        self.query_one("#live-instruction", Static).update(body)
        self.reset_stream()

    def reset(self) -> None:
        """A new session: nothing of the previous one stays."""
        self.query_one("#live-instruction", Static).update("")
        self.hide_banner()
        self.reset_stream()

    def reset_stream(self) -> None:
        self._agent = ""
        self._pending.clear()
        self.query_one(WrappedLog).clear()

    def stream(self, agent: str, piece: str) -> None:
        if agent != self._agent:
            self._agent = agent
            self._pending.append(f"\n{agent}: ")
        self._pending.append(piece)

    def note(self, text: str) -> None:
        self._agent = ""
        self._pending.append(f"\n— {text}\n")

    def flush(self) -> None:
        if self._pending:
            chunk = "".join(self._pending)
            self._pending.clear()
            self.query_one(WrappedLog).write(chunk)
