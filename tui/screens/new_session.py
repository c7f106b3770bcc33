"""New session: pick a script, type the change request, pick the worker's teachers."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, SelectionList, TextArea


class PythonTree(DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py")]


class NewSessionScreen(ModalScreen[tuple[Path, str, list[str]] | None]):
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", id="new_session.close"),
        Binding("ctrl+enter", "start", "Start", id="new_session.start"),
    ]

    def __init__(self, teachers: list[str], worker_teachers: list[str], start_dir: Path, script: Path | None = None,
                 request: str = "") -> None:
        super().__init__()
        self.teachers = teachers
        self.worker_teachers = worker_teachers
        self.start_dir = start_dir
        self.script = script
        self.request = request

    def compose(self) -> ComposeResult:
        with Vertical(id="new-session"):
            yield Label("New session", classes="pane-title")
            with Horizontal(id="new-session-body"):
                yield PythonTree(self.start_dir, id="picker")
                with Vertical():
                    yield Label("Script")
                    yield Input(str(self.script or ""), placeholder="path/to/script.py", id="script-path")
                    yield Label("Change request")
                    yield TextArea(self.request, id="request-text")
                    yield Label("Worker teachers (in order)")
                    yield SelectionList[str](*[(n, n, n in self.worker_teachers) for n in self.teachers], id="teachers")
            with Horizontal(id="new-session-buttons"):
                yield Button("Start (ctrl+enter)", variant="primary", id="start")
                yield Button("Cancel (esc)", id="cancel")

    @on(DirectoryTree.FileSelected)
    def picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#script-path", Input).value = str(event.path)
        self.query_one("#request-text", TextArea).focus()

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        path = Path(self.query_one("#script-path", Input).value.strip()).expanduser()
        request = self.query_one("#request-text", TextArea).text.strip()
        teachers = list(self.query_one("#teachers", SelectionList).selected)
        if not path.name:
            self.notify("Pick a script first", severity="warning")
            return
        if not path.is_file():
            self.notify(f"No script at {path}", severity="error")
            return
        if not request:
            self.notify("Type the change request", severity="warning")
            return
        if not teachers:
            self.notify("Pick at least one teacher for the worker", severity="warning")
            return
        self.dismiss((path, request, teachers))

    @on(Button.Pressed, "#cancel")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)
