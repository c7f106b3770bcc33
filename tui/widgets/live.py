"""What the agents are doing now: the instruction, and the worker's output as it streams."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class LivePane(VerticalScroll):
    def compose(self):
        yield Static("", id="live-instruction", classes="section")
        yield Static("", id="live-stream")

    def on_mount(self) -> None:
        self._agent = ""
        self._text = Text()

    def set_instruction(self, text: str, cycle: int, teacher: str) -> None:
        body = Text()
        body.append(f"Instruction (cycle {cycle}, worker: {teacher})\n", style="bold")
        body.append(text)
        self.query_one("#live-instruction", Static).update(body)
        self.reset_stream()

    def reset_stream(self) -> None:
        self._agent = ""
        self._text = Text()
        self.query_one("#live-stream", Static).update(self._text)

    def stream(self, agent: str, piece: str) -> None:
        if agent != self._agent:
            self._agent = agent
            self._text.append(f"\n{agent}: ", style="bold")
        self._text.append(piece)  # plain text: model output never becomes markup
        self.query_one("#live-stream", Static).update(self._text)
        self.scroll_end(animate=False)

    def note(self, text: str) -> None:
        self._text.append(f"\n— {text}", style="italic")
        self.query_one("#live-stream", Static).update(self._text)
