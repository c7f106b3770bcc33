"""Save the session's script: to its own file or another, with the diff against what is on disk.

The guard and the backup live in `tui.script_file`; this screen shows what a save would do and asks
before it overwrites a file that changed since the session started.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static
from textual_diff_view import DiffView

from engine.errors import ShakeError
from engine.execution.sanitize import sanitize
from tui.script_file import SavePlan, plan_save, save
from tui.session_view import SessionView, plural, shown_path


class SaveScreen(ModalScreen[Path | None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="save.close"),
        Binding("ctrl+r", "save", "Save", id="save.confirm"),
    ]

    def __init__(self, view: SessionView, backup_dir: Path, *, ask_path: bool = False) -> None:
        super().__init__()
        self.view = view
        self.backup_dir = backup_dir
        self.ask_path = ask_path
        self.plan: SavePlan | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="save", classes="dialog"):
            yield Label(f"Save the session's script ({self.view.progress}, "
                        f"{plural(self.view.accepted_steps, 'accepted step')})", classes="pane-title")
            yield Label("File (Enter shows the diff against it)")
            yield Input(str(shown_path(self.view.script_path)), id="save-path")
            yield Static("", id="save-warning")
            yield VerticalScroll(id="save-diff")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+r)", variant="primary", id="save-confirm")
                yield Button("Cancel (esc)", id="save-cancel")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        await self.refresh_plan()
        (self.query_one("#save-path", Input) if self.ask_path else self.query_one("#save-cancel", Button)).focus()

    async def refresh_plan(self) -> None:
        warning = self.query_one("#save-warning", Static)
        box = self.query_one("#save-diff", VerticalScroll)
        await box.remove_children()
        button = self.query_one("#save-confirm", Button)
        try:
            self.plan = plan_save(Path(self.query_one("#save-path", Input).value.strip()), self.view.current_script,
                                  session_file=self.view.script_path, started_from=self.view.original_script)
        except ShakeError as err:
            self.plan = None
            warning.update(Text(str(err)))
            warning.set_classes("warning-text")
            button.disabled = True
            return
        plan = self.plan
        button.disabled = False
        button.label = "Save (ctrl+r)"
        button.variant = "primary"
        if plan.changed_since_start:
            warning.update(Text(f"{plan.target} changed on disk since the session started: saving replaces those "
                                "changes (the file as it is now is kept as a backup). Check the diff below."))
            warning.set_classes("warning-text")
            button.label = "Overwrite (ctrl+r)"
            button.variant = "error"
        elif plan.on_disk is None:
            warning.update(Text(f"{plan.target} does not exist yet: it will be created."))
            warning.set_classes("dim-text")
        elif plan.unchanged:
            warning.update(Text(f"{plan.target} already holds this script: nothing to save."))
            warning.set_classes("dim-text")
            button.disabled = True
        else:
            kept = shown_path(self.backup_dir)
            warning.update(Text(f"Replaces {plan.target}; the current file is kept under {kept}."))
            warning.set_classes("dim-text")
        if not plan.unchanged:
            await box.mount(DiffView(f"on disk/{plan.target.name}", f"session/{plan.target.name}",
                                     sanitize(plan.on_disk or ""), sanitize(plan.text), split=False,
                                     annotations=True))

    @on(Input.Submitted, "#save-path")
    async def path_entered(self) -> None:
        await self.refresh_plan()
        self.query_one("#save-confirm", Button).focus()

    @on(Button.Pressed, "#save-confirm")
    async def action_save(self) -> None:
        if self.plan is None or self.plan.target != Path(self.query_one("#save-path", Input).value.strip()).expanduser():
            await self.refresh_plan()  # the path was edited: show its diff before anything is written
            if self.plan is not None:
                self.notify("Check the diff for this file, then save again", severity="warning")
            return
        if self.plan.unchanged:
            self.notify("Nothing to save: the file already holds this script")
            return
        try:
            backup = save(self.plan, self.backup_dir)
        except ShakeError as err:
            self.notify(str(err), severity="error", timeout=10)
            await self.refresh_plan()
            return
        kept = f"; the previous file is in {backup}" if backup else ""
        self.app.notify(f"Saved {self.plan.target}{kept}", timeout=8)
        self.dismiss(self.plan.target)

    @on(Button.Pressed, "#save-cancel")
    def action_close(self) -> None:
        self.dismiss(None)
