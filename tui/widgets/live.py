"""What the agents are doing now: the instruction, and the teachers' output as it streams.

Tokens arrive far faster than a screen needs to change: they are buffered and appended to a
`WrappedLog` (which wraps long lines and re-renders only the line that grows) at most 20 times a
second, so that a streaming worker never makes the keyboard wait.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from engine.execution.sanitize import sanitize
from tui.widgets.wrapped_log import WrappedLog

FLUSH_INTERVAL_S = 0.05
MAX_LINES = 4000


class LivePane(Vertical):
    def compose(self):
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

    def set_instruction(self, text: str, cycle: int, teacher: str) -> None:
        body = Text()
        body.append(f"Instruction (cycle {cycle}, worker: {teacher})\n", style="bold")
        body.append(sanitize(text))  # plain text: model output never becomes markup nor terminal control
        self.query_one("#live-instruction", Static).update(body)
        self.reset_stream()

    def reset(self) -> None:
        """A new session: nothing of the previous one stays."""
        self.query_one("#live-instruction", Static).update("")
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
            self.query_one(WrappedLog).write(sanitize(chunk))
