"""The trainer settings form: one line per `shake train` setting, checked as it is typed: what the
trainer would refuse is said on the field's own line, in the form's words."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from tui.train_settings import SettingsError, form_fields, parse


class TrainSettingsScreen(ModalScreen[dict[str, str] | None]):
    BINDINGS = [
        Binding("escape", "close", "Close without keeping", id="train_settings.close"),
        Binding("ctrl+r", "keep", "Keep settings", id="train_settings.keep"),
    ]

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__()
        self.values = dict(values)

    def compose(self) -> ComposeResult:
        with Vertical(id="train-settings", classes="dialog"):
            yield Label("Training settings (empty: the default; the flags of `shake train`)", classes="pane-title")
            with VerticalScroll(id="train-settings-fields"):
                for field in form_fields():
                    with Horizontal(classes="form-row"):
                        yield Label(field.label, classes="form-label")
                        value = self.values.get(field.name, "")
                        if field.choices:
                            yield Select([(c, c) for c in field.choices], value=value or field.default,
                                         allow_blank=False, id=f"field-{field.name}", classes="form-input")
                        else:
                            yield Input(value, placeholder=str(field.default) or "(default)",
                                        id=f"field-{field.name}", classes="form-input")
                        yield Static(Text(field.help), classes="form-help", id=f"help-{field.name}")
            yield Static("", id="train-settings-error", classes="warning-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Keep (ctrl+r)", variant="primary", id="train-settings-keep")
                yield Button("Cancel (esc)", id="train-settings-cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        first = form_fields()[0]
        self.query_one(f"#field-{first.name}").focus()

    def collected(self) -> dict[str, str]:
        out = {}
        for field in form_fields():
            widget = self.query_one(f"#field-{field.name}")
            value = widget.value if isinstance(widget, (Input, Select)) else ""
            out[field.name] = "" if value in (None, Select.BLANK) else str(value)
        return out

    def check(self) -> SettingsError | None:
        """Check the form as it stands; the problem, if any, is shown next to its field."""
        try:
            parse(self.collected())
            problem = None
        except SettingsError as err:
            problem = err
        for field in form_fields():
            help_line = self.query_one(f"#help-{field.name}", Static)
            wrong = problem is not None and problem.field == field.name
            help_line.update(Text(str(problem) if wrong else field.help))
            help_line.set_class(wrong, "error-text")
        bottom = "" if problem is None or problem.field else str(problem)  # one no field owns
        self.query_one("#train-settings-error", Static).update(Text(bottom))
        return problem

    @on(Input.Changed)
    @on(Select.Changed)
    def changed(self) -> None:
        if self.is_mounted:
            self.check()

    @on(Button.Pressed, "#train-settings-keep")
    @on(Input.Submitted)
    def action_keep(self) -> None:
        problem = self.check()
        if problem is not None:
            if problem.field:
                self.query_one(f"#field-{problem.field}").focus()
            return
        self.dismiss({k: v for k, v in self.collected().items() if v})

    @on(Button.Pressed, "#train-settings-cancel")
    def action_close(self) -> None:
        self.dismiss(None)
