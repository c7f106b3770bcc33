"""Help: every key binding of the app and its screens, with its id (for remapping) and description."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static


def key_display(app, keys: str) -> str:
    """`f1,question_mark` -> `f1 / ?`: each key as the footer shows it."""
    return " / ".join(app.get_key_display(Binding(key.strip(), "")) for key in keys.split(","))


def all_bindings(app) -> list[tuple[str, str, str, str]]:
    """(where, key, id, description) for the app, every screen class and the widgets with bindings."""
    from tui.screens.ask import AskTextScreen, ConfirmDiffScreen
    from tui.screens.dataset import DatasetScreen, RowTable
    from tui.screens.new_session import NewSessionScreen
    from tui.screens.quit import QuitScreen
    from tui.screens.save import SaveScreen
    from tui.screens.session import SessionScreen
    from tui.screens.sessions import SessionsScreen
    from tui.screens.train_settings import TrainSettingsScreen
    from tui.screens.trainer import TrainerScreen
    from tui.widgets.discovery_hint import DiscoveryHint
    from tui.widgets.feedback import FeedbackInput, LabelConfirm
    from tui.widgets.plan import PlanView
    from tui.widgets.run_log import RunLog
    from tui.widgets.teacher_picker import TeacherList

    owners = [("app", type(app)), ("session", SessionScreen), ("feedback", FeedbackInput), ("label", LabelConfirm),
              ("plan", PlanView), ("run log", RunLog), ("teachers found", DiscoveryHint),
              ("new session", NewSessionScreen), ("new session", TeacherList), ("sessions", SessionsScreen),
              ("save", SaveScreen), ("your edit", ConfirmDiffScreen), ("step text", AskTextScreen),
              ("dataset", DatasetScreen), ("dataset", RowTable), ("trainer", TrainerScreen),
              ("trainer settings", TrainSettingsScreen), ("quit", QuitScreen)]
    keymap = getattr(app, "_keymap", {}) or {}
    rows, seen = [], set()
    for where, owner in owners:
        for b in owner.BINDINGS:
            # one row per id: a pane that shows its screen's keys in the footer (the diff, the run log)
            # binds them under the screen's ids
            if isinstance(b, Binding) and b.id and b.id not in seen:
                seen.add(b.id)
                key = keymap.get(b.id) or b.key_display or b.key
                rows.append((where, key_display(app, key), b.id, b.description or b.action))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close", id="help.close"),
        # The help key closes what it opened: the same binding id, so that one remap moves both.
        Binding("f1,question_mark", "dismiss", "Close", id="app.help", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Label("Keys — remap any of them in the config file: [ui.keys] \"session.copy_diff\" = \"ctrl+d\"",
                        classes="pane-title")
            yield DataTable(id="help-table", zebra_stripes=True, cursor_type="row")
            yield Static("Every action is also in the command palette (ctrl+p). Esc closes this.", classes="dim-text")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "id", "action")
        for row in all_bindings(self.app):
            table.add_row(*row)
        table.focus()
