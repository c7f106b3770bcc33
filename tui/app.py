"""The Textual review studio. It drives the engine's session and the trainer and adds no logic of its own.

Screens are modes (session, dataset, trainer); every key is a `Binding` with an id, shown in the
footer, the command palette and the help screen, and remappable under `[ui.keys]` in the config.
Colours come from the themes in `themes/`; the last one chosen is remembered.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding

from engine.config import Config, UIConfig, default_of, load_config
from engine.errors import ShakeError
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from tui.themes import UIState, load_themes

OLLAMA_DEFAULT = "http://127.0.0.1:11434"


class ShakeApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "shake"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+n", "new_session", "New session", id="app.new_session"),
        Binding("f2", "switch_mode('session')", "Session", id="app.session"),
        Binding("f3", "switch_mode('dataset')", "Dataset", id="app.dataset"),
        Binding("f4", "switch_mode('trainer')", "Trainer", id="app.trainer"),
        Binding("f5", "resume_session", "Resume", id="app.resume"),
        Binding("f9", "cycle_theme", "Theme", id="app.cycle_theme"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, script: Path | None = None, request: str = "", *, config: Config | None = None,
                 pool: TeacherPool | None = None, check_ollama: bool = True, train_args: list[str] | None = None) -> None:
        super().__init__()
        self.config = config or load_config()
        self.ui_state = UIState(self.config.data_dir)
        self.initial_script = script
        self.initial_request = request
        self.pool = pool or TeacherPool(self.config)
        self.store: DatasetStore | None = None
        self.check_ollama = check_ollama
        self.train_args = train_args or []
        self.teacher_status: dict[str, str | None] = {}
        self.session_screen = None

    # -- start-up -----------------------------------------------------------------------------
    def on_mount(self) -> None:
        from tui.screens.dataset import DatasetScreen
        from tui.screens.trainer import TrainerScreen

        for theme in load_themes():
            self.register_theme(theme)
        wanted = self.ui_state.get("theme") or self.config.ui.theme
        self.theme = wanted if wanted in self.available_themes else default_of(UIConfig, "theme")
        self.theme_changed_signal.subscribe(self, lambda theme: self.ui_state.set("theme", theme.name))
        if self.config.ui.keys:
            self.set_keymap(self.config.ui.keys)
        try:
            self.store = DatasetStore(self.config.data_dir)
        except ShakeError as err:
            self.exit(return_code=2, message=f"shake: {err}")
            return
        self.add_mode("session", self._make_session_screen)
        self.add_mode("dataset", DatasetScreen)
        self.add_mode("trainer", TrainerScreen)
        self.switch_mode("session")
        self.check_teachers()
        if self.initial_script is not None:
            if not self.initial_request.strip():
                self.call_after_refresh(self.action_new_session)
            else:
                self.call_after_refresh(self.session_screen.start, self.initial_script, self.initial_request)

    def on_unmount(self) -> None:
        if self.store is not None:
            self.store.close()
        self.pool.close()

    def _make_session_screen(self):
        from tui.screens.session import SessionScreen

        self.session_screen = SessionScreen()
        return self.session_screen

    @property
    def teacher_summary(self) -> str:
        names = self.pool.names_for("worker")
        marks = []
        for name in names:
            problem = self.teacher_status.get(name, "")
            marks.append(f"{name} {'✓' if problem is None else ('✗' if problem else '…')}")
        return ", ".join(marks)

    def dataset_rows(self) -> int:
        return sum(1 for _ in self.store.rows()) if self.store else 0

    def dataset_complete_rows(self) -> int:
        return self.store.stats().complete_rows if self.store else 0

    @work(thread=True, group="health", exit_on_error=False)
    def check_teachers(self) -> None:
        """Health-check every teacher, and say in one line when Ollama is not running."""
        status = self.pool.health()
        self.call_from_thread(self._set_teacher_status, status)
        for name, problem in status.items():
            if problem:
                self.call_from_thread(self.notify, f"Teacher '{name}': {problem}", severity="error", timeout=10)
        if self.check_ollama and not any(t.backend == "ollama" for t in self.config.teachers.values()):
            try:
                httpx.get(f"{OLLAMA_DEFAULT}/api/version", timeout=0.5)
            except httpx.HTTPError:
                self.call_from_thread(
                    self.notify, f"No Ollama at {OLLAMA_DEFAULT}; working on the embedded SmolLM2 teacher.", timeout=6
                )

    def _set_teacher_status(self, status: dict[str, str | None]) -> None:
        self.teacher_status = status
        screen = self.session_screen
        if screen is not None and screen.is_mounted:
            screen.refresh_status()

    # -- actions ------------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_new_session(self) -> None:
        from tui.screens.new_session import NewSessionScreen

        def started(result) -> None:
            if result is None:
                return
            path, request, teachers = result
            self.config.agents["worker"] = teachers
            self.switch_mode("session")
            self.session_screen.start(path, request)

        start_dir = self.initial_script.parent if self.initial_script else Path.cwd()
        self.push_screen(
            NewSessionScreen(list(self.config.teachers), self.pool.names_for("worker"), start_dir,
                             self.initial_script, self.initial_request),
            started,
        )

    def action_resume_session(self) -> None:
        for session_id in reversed(self.store.session_ids()):
            state = self.store.load_state(session_id)
            if state.status != "done":
                self.switch_mode("session")
                self.session_screen.resume(Session.resume(self.store, self.pool, self.config, session_id))
                self.notify(f"Resumed session {session_id}: {state.request[:60]}")
                return
        self.notify("No unfinished session to resume", severity="warning")

    def action_cycle_theme(self) -> None:
        names = [n for n in self.available_themes if n.startswith("shake-")]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"Theme: {self.theme}")

    def get_system_commands(self, screen):
        """Every binding of the app and of the active screen is a palette command too."""
        yield from super().get_system_commands(screen)
        seen = set()
        for owner in (self, screen):
            for binding in owner.BINDINGS:
                if not isinstance(binding, Binding) or not binding.id or binding.id in seen:
                    continue
                seen.add(binding.id)
                action = binding.action
                yield SystemCommand(f"{binding.description} ({binding.key.split(',')[0]})", f"id {binding.id}",
                                    lambda owner=owner, action=action: self.call_later(self._run_for, owner, action))

    async def _run_for(self, owner, action: str) -> None:
        await self.run_action(action, owner)
