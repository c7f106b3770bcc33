"""Two small questions the session screen asks: a line of text, and "take this change?" with its diff."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static
from textual_diff_view import DiffView

from engine.execution.sanitize import sanitize


class AskTextScreen(ModalScreen[str | None]):
    """One line of text (the step's wording): Enter keeps it, Esc leaves it as it was."""

    BINDINGS = [Binding("escape", "close", "Close", id="ask.close")]

    def __init__(self, title: str, value: str, note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="ask-text", classes="dialog small-dialog"):
            yield Label(self.title_text, classes="pane-title")
            yield Input(self.value, id="ask-input")
            yield Static(Text(self.note or "Enter keeps it · Esc leaves it as it was"), classes="dim-text")
        yield Footer(compact=True)

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        text = " ".join(event.value.split())
        if not text:
            self.notify("The text is empty", severity="warning")
            return
        self.dismiss(text)

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmDiffScreen(ModalScreen[bool]):
    """A change shown as a diff, to take (ctrl+r) or leave (Esc)."""

    BINDINGS = [
        Binding("escape", "answer(False)", "Discard", id="confirm.discard"),
        Binding("ctrl+r", "answer(True)", "Accept", id="confirm.accept"),
    ]

    def __init__(self, title: str, note: str, before: str, after: str, accept_label: str, *,
                 names: tuple[str, str]) -> None:
        super().__init__()
        self.title_text, self.note = title, note
        self.before, self.after = before, after
        self.accept_label = accept_label
        self.names = names  # the two sides' titles, as the user knows them: `proposal: hello.py`

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-diff", classes="dialog"):
            yield Label(self.title_text, classes="pane-title")
            yield Static(Text(self.note), classes="dim-text")
            with VerticalScroll(id="confirm-diff-body"):
                yield DiffView(*self.names, sanitize(self.before), sanitize(self.after),
                               split=False, annotations=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.accept_label} (ctrl+r)", variant="primary", id="confirm-accept")
                yield Button("Discard (esc)", id="confirm-discard")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm-accept", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-accept")

    def action_answer(self, take: bool) -> None:
        self.dismiss(take)
