"""New session: pick a script, type the change request, pick the worker's teachers; optionally, project
mode (the project root, the run command, the check command; engine/execution/project.py), checked when
Start is pressed so that a bad one is one line on screen and nothing is written.

The form keeps what was typed: closing it (Esc) and opening it again brings the draft back. Focus
starts on the script's path (or on the request when the script is known) and goes path → file tree →
request → teachers → Start; keys typed where text cannot go (the file tree after a pick, the teacher
list) go to the request instead of being lost, spaces included (see `ForwardsTyping`). ctrl+r starts from anywhere (ctrl+enter
too where the terminal reports it: tmux and xterm send plain Enter for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Footer, Input, Label, TextArea

from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.execution.project import RunSpec, make_spec
from tui.widgets.teacher_picker import TeacherChoice, TeacherList, TeacherPicker
from tui.widgets.typing import ForwardsTyping

if TYPE_CHECKING:
    from engine.teachers.discovery import Discovery


@dataclass
class NewSessionDraft:
    """What the form holds; the app keeps it between openings."""

    script: str = ""
    request: str = ""
    choices: list[TeacherChoice] = field(default_factory=list)
    project: str = ""  # project mode: all three empty = the script runs alone
    run: str = ""
    check: str = ""


@dataclass(frozen=True)
class NewSessionRequest:
    script: Path
    request: str
    teachers: tuple[TeacherChoice, ...]  # ticked, in order; a `found` one is added to the config first
    project: RunSpec | None = None  # project mode, checked


class PythonTree(ForwardsTyping, DirectoryTree):
    def filter_paths(self, paths):
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py")]


def teacher_choices(config, worker: list[str]) -> list[TeacherChoice]:
    """The configured teachers, the worker's own first and in its order."""
    names = list(worker) + [n for n in config.teachers if n not in worker]
    choices = []
    for name in names:
        t = config.teacher(name)
        where = t.model or ("bundled SmolLM2-135M" if t.backend == "embedded" else "")
        choices.append(TeacherChoice(name, f"{t.backend}: {where}".rstrip(": "), name in worker))
    return choices


def found_choices(config, found: Discovery) -> list[TeacherChoice]:
    """Models discovery found that no configured teacher runs yet."""
    from engine.config_edit import free_name, slug
    from engine.teachers.discovery import configured_as, describe_model

    taken = set(config.teachers)
    choices = []
    for model in found.models:
        if configured_as(config, model):
            continue
        name = free_name(slug(model.model), taken)
        taken.add(name)
        choices.append(TeacherChoice(name, describe_model(model), False, model))
    return choices


class NewSessionScreen(ModalScreen[NewSessionRequest | None]):
    BINDINGS = [
        Binding("escape", "close", "Close (keeps the draft)", id="new_session.close"),
        Binding("ctrl+r,ctrl+enter", "start", "Start", id="new_session.start"),
    ]

    @dataclass
    class Found(Message):
        """Discovery finished: models on this machine that could be teachers."""

        discovery: Discovery

    def __init__(self, draft: NewSessionDraft, start_dir: Path, *, discover: bool = True) -> None:
        super().__init__()
        self.draft = draft
        self.start_dir = start_dir
        self.discover = discover

    def compose(self) -> ComposeResult:
        with Vertical(id="new-session", classes="dialog"):
            yield Label("New session", classes="pane-title")
            with Horizontal(id="new-session-body"):
                with Vertical(id="picker-column"):
                    yield Label("Script (type a path, or pick one below)")
                    yield Input(self.draft.script, placeholder="path/to/script.py", id="script-path")
                    yield PythonTree(self.start_dir, id="picker")
                    yield Label("Project mode (optional)")
                    yield Input(self.draft.project, placeholder="project root (default: git root)", id="project-root")
                    yield Input(self.draft.run, placeholder="run: python report.py --month 3", id="run-command")
                    yield Input(self.draft.check, placeholder="check: pytest -q tests/test_x.py", id="check-command")
                with Vertical(id="request-column"):
                    yield Label("Change request")
                    yield TextArea(self.draft.request, id="request-text")
                    yield Label("Worker teachers (in order)")
                    yield TeacherPicker(self.draft.choices, id="teachers")
            with Horizontal(id="new-session-buttons", classes="dialog-buttons"):
                yield Button("Start (ctrl+r)", variant="primary", id="start")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # The path box first, as its label says: what the user types goes where they see it go.
        if self.draft.script.strip():
            self.query_one("#request-text", TextArea).focus()
        else:
            self.query_one("#script-path", Input).focus()
        if self.discover:
            self.find_teachers()

    @work(thread=True, exclusive=True, group="discovery", exit_on_error=False)
    def find_teachers(self) -> None:
        self.post_message(self.Found(self.app.run_discovery()))

    @on(Found)
    def on_found(self, message: Found) -> None:
        choices = found_choices(self.app.config, message.discovery)
        if choices:
            self.query_one(TeacherPicker).add_found(choices)

    @on(DirectoryTree.FileSelected)
    def picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#script-path", Input).value = str(event.path)
        self.save_draft()

    @on(ForwardsTyping.TypedText)
    def typed_elsewhere(self, message: ForwardsTyping.TypedText) -> None:
        request = self.query_one("#request-text", TextArea)
        if not request.has_focus:
            request.move_cursor(request.document.end)  # the typing continues the request
            request.focus()
        request.insert(message.text)

    @on(Input.Changed, "#script-path")
    @on(Input.Changed, "#project-root")
    @on(Input.Changed, "#run-command")
    @on(Input.Changed, "#check-command")
    @on(TextArea.Changed, "#request-text")
    def save_draft(self) -> None:
        self.draft.script = self.query_one("#script-path", Input).value
        self.draft.request = self.query_one("#request-text", TextArea).text
        self.draft.project = self.query_one("#project-root", Input).value
        self.draft.run = self.query_one("#run-command", Input).value
        self.draft.check = self.query_one("#check-command", Input).value

    def project_spec(self, script: Path) -> RunSpec | None:
        """Project mode as typed, checked (InputError: one line); None when its fields are empty."""
        project, run, check = (self.draft.project.strip(), self.draft.run.strip(), self.draft.check.strip())
        if not (project or run or check):
            return None
        spec, _ = make_spec(script, project=Path(project).expanduser() if project else None,
                            run=run or None, check=check or None)
        return spec

    @on(Input.Submitted, "#script-path")
    def path_entered(self) -> None:
        self.query_one("#request-text", TextArea).focus()

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self.save_draft()
        path = Path(self.draft.script.strip()).expanduser()
        request = self.draft.request.strip()
        teachers = tuple(self.query_one(TeacherPicker).ticked)
        if not self.draft.script.strip():
            self.notify("Pick a script first", severity="warning")
            self.query_one("#picker", PythonTree).focus()
            return
        if not path.is_file():
            self.notify(f"No script at {path}", severity="error")
            self.query_one("#script-path", Input).focus()
            return
        if not request:
            self.notify("Type the change request", severity="warning")
            self.query_one("#request-text", TextArea).focus()
            return
        if not teachers:
            self.notify("Tick at least one teacher for the worker (space)", severity="warning")
            self.query_one(TeacherList).focus()
            return
        try:
            spec = self.project_spec(path)
        except InputError as err:
            self.notify(str(err), severity="error", timeout=10)
            self.query_one("#run-command" if "command" in str(err) else "#project-root", Input).focus()
            return
        self.dismiss(NewSessionRequest(path, request, teachers, spec))

    @on(Button.Pressed, "#cancel")
    def action_close(self) -> None:
        self.save_draft()
        self.dismiss(None)
