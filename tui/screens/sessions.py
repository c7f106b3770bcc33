"""Saved sessions: state, step, last change; Enter resumes the one under the cursor."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, Static

from engine.execution.sanitize import sanitize
from tui.session_view import SessionView, ago, plural


class SessionsScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="sessions.close"),
        Binding("enter", "resume", "Resume", id="sessions.resume"),
        Binding("a", "toggle_all", "Show finished too", id="sessions.toggle_all"),
    ]

    def __init__(self, views: list[SessionView]) -> None:
        super().__init__()
        self.views = views
        self.show_all = False

    def compose(self) -> ComposeResult:
        with Vertical(id="sessions", classes="dialog"):
            yield Label("", id="sessions-title", classes="pane-title")
            yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="sessions-empty", classes="placeholder")
            yield Static("Enter resumes the session under the cursor (it waits for you: ctrl+g continues) · "
                         "a shows finished sessions too · Esc closes", classes="dim-text")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("session", "state", "where", "last change", "script", "request")
        self.fill()
        table.focus()

    @property
    def shown(self) -> list[SessionView]:
        return self.views if self.show_all else [v for v in self.views if not v.finished]

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        shown = self.shown
        for view in shown:
            table.add_row(view.id, view.status, view.progress, ago(view.updated_at), view.script_path.name,
                          Text(sanitize(view.request[:70])), key=view.id)
        unfinished = sum(1 for v in self.views if not v.finished)
        title = f"{plural(unfinished, 'unfinished session')}"
        if self.show_all:
            title += f" · {plural(len(self.views), 'session')} in all"
        self.query_one("#sessions-title", Label).update(title)
        empty = self.query_one("#sessions-empty", Static)
        empty.display = not shown
        if not shown:  # an empty table says nothing: what there is, and what to do
            finished = len(self.views) - unfinished
            empty.update(f"No unfinished session to resume: a shows the {plural(finished, 'finished one')}, "
                         "ctrl+n starts a new one." if finished and not self.show_all
                         else "No saved session yet: ctrl+n starts one.")

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.fill()

    def action_resume(self) -> None:
        table = self.query_one(DataTable)
        if not self.shown:
            self.notify("No session to resume: ctrl+n starts one", severity="warning")
            return
        self.dismiss(self.shown[table.cursor_row].id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))

    def action_close(self) -> None:
        self.dismiss(None)
