"""Quitting while a training run is going: stop it, or leave it running for the next start."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

STOP, LEAVE = "stop", "leave"


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("s", "choose('stop')", "Stop training and quit", id="quit.stop"),
        Binding("l", "choose('leave')", "Leave it running and quit", id="quit.leave"),
        Binding("escape", "choose('')", "Stay", id="quit.stay"),
    ]

    def __init__(self, run_name: str, progress: str) -> None:
        super().__init__()
        self.run_name = run_name
        self.progress = progress

    def compose(self) -> ComposeResult:
        with Vertical(id="quit", classes="dialog"):
            yield Label("Quit shake", classes="pane-title")
            yield Static(Text(f"The training run {self.run_name} is going ({self.progress}).\n"
                              "s stops it after the current step (a checkpoint is saved; R in F4 resumes it later).\n"
                              "l leaves it running: F4 shows it live again at the next start.\n"
                              "Esc stays in the app."))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop it, quit (s)", variant="error", id="quit-stop")
                yield Button("Leave it running, quit (l)", variant="primary", id="quit-leave")
                yield Button("Stay (esc)", id="quit-stay")

    def on_mount(self) -> None:
        self.query_one("#quit-leave", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.action_choose({"quit-stop": STOP, "quit-leave": LEAVE}.get(event.button.id or "", ""))

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)
