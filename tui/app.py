"""The Textual review studio. It drives the engine's session and the trainer and adds no logic of its own.

Screens are modes (session, dataset, trainer); every key is a `Binding` with an id, shown in the
footer, the command palette and the help screen, and remappable under `[ui.keys]` in the config.
Colours come from the themes in `themes/`; the last one chosen is remembered.

Start-up never waits on the network: teacher health checks and the discovery of local model servers
run in the background and report through messages. Quitting cancels the engine's operation first
(as Esc does), so the app is gone within a second and nothing is written after the user asked to
quit; a training run that is going is stopped or left running, as the user says.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message

from engine.config import Config, UIConfig, default_of, load_config
from engine.errors import ShakeError
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from tui.background import in_daemon_thread
from tui.hangup import HANGUP_EXIT_CODE, POLL_INTERVAL_S, terminal_gone
from tui.session_view import SessionView, plural, saved_sessions, unfinished
from tui.themes import UIState, load_themes
from tui.training import TrainingRun, default_train_command, forget, recall, request_stop, shake_command

if TYPE_CHECKING:  # discovery and the config editor load when first used: they cost first paint 1.2 s
    from engine.teachers.discovery import Discovery, FoundModel

HINT_KEY = "discovery_hint"  # "dismissed" once the user closed the first-start hint
ENGINE_STOP_WAIT_S = 2.0  # at quit: how long the engine's cancelled operation may take to end


def _session_screen():
    from tui.screens.session import SessionScreen

    return SessionScreen()


def _dataset_screen():
    from tui.screens.dataset import DatasetScreen

    return DatasetScreen()


def _trainer_screen():
    from tui.screens.trainer import TrainerScreen

    return TrainerScreen()


class ShakeApp(App):
    CSS_PATH = Path(__file__).resolve().parent / "app.tcss"  # absolute: subclasses live elsewhere
    TITLE = "shake"
    MODES = {"session": _session_screen, "dataset": _dataset_screen, "trainer": _trainer_screen}
    DEFAULT_MODE = "session"
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        Binding("ctrl+n", "new_session", "New", id="app.new_session"),
        Binding("f2", "switch_mode('session')", "Session", id="app.session"),
        Binding("f3", "switch_mode('dataset')", "Dataset", id="app.dataset"),
        Binding("f4", "switch_mode('trainer')", "Trainer", id="app.trainer"),
        Binding("f5", "sessions", "Sessions", id="app.sessions"),
        Binding("f6", "find_teachers", "Find teachers", id="app.find_teachers", show=False),
        Binding("f9", "cycle_theme", "Theme", id="app.cycle_theme", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    @dataclass
    class TeachersChecked(Message):
        """Every configured teacher's health: None when it answers, else the reason."""

        status: dict[str, str | None]

    @dataclass
    class SandboxChecked(Message):
        """Whether scripts can run here: None when the sandbox starts, else why not and the fix."""

        problem: str | None

    @dataclass
    class TeachersFound(Message):
        """Discovery finished: the local servers and the models they offer."""

        discovery: Discovery
        show_hint: bool

    def __init__(self, script: Path | None = None, request: str = "", *, config: Config | None = None,
                 pool: TeacherPool | None = None, check_ollama: bool = True, train_args: list[str] | None = None,
                 train_command: list[str] | None = None, openai_ports: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.config = config or load_config()
        self.ui_state = UIState(self.config.data_dir)
        # Opened before the first frame: a second app on the same data says so on stderr and exits 2.
        self.store = DatasetStore(self.config.data_dir)
        self.initial_script = script
        self.initial_request = request
        self.pool = pool or TeacherPool(self.config)
        self.check_ollama = check_ollama  # probe this machine's model servers (tests turn it off)
        self.openai_ports = openai_ports  # None: the usual local ports (see `discovery.OPENAI_PORTS`)
        self.train_args = train_args or []
        self.train_command = train_command or default_train_command()
        self.shake_command = shake_command()
        self.teacher_status: dict[str, str | None] = {}
        self.discovery: Discovery | None = None
        self.unfinished_sessions: list[SessionView] = unfinished(saved_sessions(self.store))
        self.training: TrainingRun | None = recall(self.ui_state)
        self.new_session_draft = None
        self.terminal = None  # the terminal file when `run_app` draws on its own copy (tui/terminal.py)
        self.hung_up = False  # the terminal went away (tui/hangup.py): the app is exiting
        self.sandbox_problem: str | None = None  # why scripts cannot run here (bubblewrap missing...)
        for theme in load_themes():
            self.register_theme(theme)
        wanted = self.ui_state.get("theme") or self.config.ui.theme
        self.theme = wanted if wanted in self.available_themes else default_of(UIConfig, "theme")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The key of the mode one is in leaves the footer (it would do nothing there), so that the
        focused pane's keys fit; the other modes' keys stay."""
        if action == "switch_mode" and parameters and parameters[0] == self.current_mode:
            return False
        return True

    @property
    def session_screen(self):
        from tui.screens.session import SessionScreen

        for screen in self._screen_stacks.get("session", []):
            if isinstance(screen, SessionScreen):
                return screen
        return None

    # -- start-up -----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.watch_terminal()
        self.theme_changed_signal.subscribe(self, lambda theme: self.ui_state.set("theme", theme.name))
        if self.config.ui.keys:
            self.set_keymap(self.config.ui.keys)
        self.check_teachers()
        if self.config.runner.sandbox == "bwrap":
            self.check_sandbox()
        if self.check_ollama:
            self.find_teachers(show_hint=self.ui_state.get(HINT_KEY) != "dismissed")
        if self.training is not None:
            self.notify(f"The training run {self.training.record.run_dir.name} is still going: F4 shows it",
                        timeout=10)
        if self.initial_script is not None:
            if not self.initial_request.strip():
                self.call_after_refresh(self.action_new_session)
            else:
                self.call_after_refresh(self.session_screen.start, self.initial_script, self.initial_request)
        elif self.unfinished_sessions:
            self.notify(f"{plural(len(self.unfinished_sessions), 'unfinished session')}: F5 lists them", timeout=8)

    async def on_unmount(self) -> None:
        # The engine's operation was cancelled by `action_quit`; let it reach its next check before
        # the store closes under it.
        engine = [w for w in self.workers if w.group == "engine" and not w.is_finished]
        if engine:
            try:
                await asyncio.wait_for(self.workers.wait_for_complete(engine), ENGINE_STOP_WAIT_S)
            except asyncio.TimeoutError:
                pass
        self.store.close()
        self.pool.close()

    # -- the terminal going away ----------------------------------------------------------------
    def watch_terminal(self) -> None:
        """On a real terminal: SIGHUP, or the terminal found hung up, ends the app (see tui/hangup.py)."""
        fd = getattr(self._driver, "fileno", None)
        if self.is_headless or not isinstance(fd, int):
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.hang_up)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: the poll below still sees the hangup
        output = getattr(self._driver, "_file", None)

        def look() -> None:
            if terminal_gone(fd) or getattr(output, "broken", False):
                self.hang_up()

        self.set_interval(POLL_INTERVAL_S, look)

    def hang_up(self) -> None:
        """The terminal is gone: exit as quitting does, without asking anything (nobody can answer); a
        training run keeps running, as when the user quits and leaves it."""
        if self.hung_up:
            return
        self.hung_up = True
        screen = self.session_screen
        if screen is not None:
            screen.cancel_engine()
        self.exit(return_code=HANGUP_EXIT_CODE)

    @property
    def teacher_summary(self) -> str:
        marks = []
        for name in self.pool.names_for("worker"):
            problem = self.teacher_status.get(name, "")
            marks.append(f"{name} {'✓' if problem is None else ('✗' if problem else '…')}")
        return ", ".join(marks)

    def dataset_rows(self) -> int:
        return sum(1 for _ in self.store.rows())

    def dataset_complete_rows(self) -> int:
        return self.store.stats().complete_rows

    @work(exclusive=True, group="health", exit_on_error=False)
    async def check_teachers(self) -> None:
        """Health-check every teacher (in a thread that quitting does not wait for)."""
        self.post_message(self.TeachersChecked(await in_daemon_thread(self.pool.health)))

    @work(exclusive=True, group="sandbox", exit_on_error=False)
    async def check_sandbox(self) -> None:
        """Can bubblewrap start a sandbox here? (it takes a process: in a thread, like the health check)"""
        from engine.execution.sandbox import probe

        self.post_message(self.SandboxChecked(await in_daemon_thread(probe)))

    @on(SandboxChecked)
    def on_sandbox_checked(self, message: SandboxChecked) -> None:
        # A fresh machine's first session must not find out run by run: the first screen says the fix.
        self.sandbox_problem = message.problem
        screen = self.session_screen
        if message.problem and screen is not None and screen.is_mounted and screen.session is None:
            screen.show_idle_banner()

    @on(TeachersChecked)
    def on_teachers_checked(self, message: TeachersChecked) -> None:
        self.teacher_status = message.status
        for name, problem in message.status.items():
            if problem:
                self.notify(f"Teacher '{name}': {problem}", severity="error", timeout=10)
        self._refresh_teachers()

    def _refresh_teachers(self) -> None:
        screen = self.session_screen
        if screen is not None and screen.is_mounted:
            screen.refresh_status()
            hint = screen.query_one("#discovery-hint")
            if hint.display and self.discovery is not None:
                hint.show(self.config, self.discovery, self.teacher_status)

    # -- discovery of local teachers ----------------------------------------------------------
    def run_discovery(self) -> Discovery:
        """Probe this machine's model servers (blocking: call it from a worker)."""
        from engine.teachers.discovery import discover

        return discover(openai_ports=self.openai_ports)

    @work(exclusive=True, group="discovery", exit_on_error=False)
    async def find_teachers(self, show_hint: bool = True) -> None:
        self.post_message(self.TeachersFound(await in_daemon_thread(self.run_discovery), show_hint))

    @on(TeachersFound)
    def on_teachers_found(self, message: TeachersFound) -> None:
        self.discovery = found = message.discovery
        screen = self.session_screen
        if message.show_hint and screen is not None:
            hint = screen.query_one("#discovery-hint")
            hint.display = True
            hint.show(self.config, found, self.teacher_status)
            if hint.addable:
                hint.query_one("#discovery-models").focus()
            return
        ollama = next((s for s in found.servers if s.kind == "ollama"), None)
        if not any(t.backend == "ollama" for t in self.config.teachers.values()) and ollama and not ollama.running:
            self.notify(f"No Ollama at {ollama.url}; working on the embedded SmolLM2 teacher (F6 looks again).",
                        timeout=6)

    def action_find_teachers(self) -> None:
        if not self.check_ollama:
            self.notify("Discovery is off in this app", severity="warning")
            return
        self.notify("Looking for local model servers…")
        self.find_teachers(show_hint=True)

    def add_found_teacher(self, found: FoundModel) -> str:
        """Write `[teachers.NAME]` for a found model, first in the worker's list; the app uses the new
        configuration from the next session on. Returns NAME."""
        from engine.config_edit import add_teacher, free_name, slug
        from engine.teachers.discovery import describe_model, teacher_config

        name = free_name(slug(found.model), self.config.teachers)
        comment = f"added by the app from {found.source}: {describe_model(found)}"
        after = add_teacher(self.config.config_path, teacher_config(found, name), comment=comment)
        self.config = after
        self.pool.config = after  # teachers are built on first use: the new one joins, the others stay
        self.teacher_status[name] = ""
        self.check_teachers()
        return name

    def on_discovery_hint_add_requested(self, message) -> None:
        try:
            name = self.add_found_teacher(message.found)
        except ShakeError as err:
            self.notify(str(err), severity="error", timeout=10)
            return
        self.notify(f"Added '{name}' ({message.found.model}) to {self.config.config_path}: the worker's teachers "
                    f"are now {' → '.join(self.config.agents['worker'])}; the next session uses it.", timeout=10)
        self._refresh_teachers()

    def on_discovery_hint_dismissed(self) -> None:
        self.ui_state.set(HINT_KEY, "dismissed")
        screen = self.session_screen
        if screen is not None:
            screen.query_one("#discovery-hint").display = False
            screen.query_one("#diff").focus()

    # -- actions ------------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_new_session(self) -> None:
        from tui.screens.new_session import NewSessionDraft, NewSessionScreen, teacher_choices

        if self.new_session_draft is None:
            self.new_session_draft = NewSessionDraft(
                str(self.initial_script or ""), self.initial_request,
                teacher_choices(self.config, self.pool.names_for("worker")))

        async def started(request) -> None:
            if request is None:
                return
            names = []
            try:
                for choice in request.teachers:
                    names.append(self.add_found_teacher(choice.found) if choice.found else choice.name)
            except ShakeError as err:
                self.notify(str(err), severity="error", timeout=10)
                return
            self.config.agents["worker"] = names  # this session's order; the file keeps its own
            self.new_session_draft = None
            await self.switch_mode("session")
            await self.session_screen.start(request.script, request.request, request.project)

        start_dir = self.initial_script.parent if self.initial_script else Path.cwd()
        self.push_screen(NewSessionScreen(self.new_session_draft, start_dir, discover=self.check_ollama), started)

    def action_sessions(self) -> None:
        from tui.screens.sessions import SessionsScreen

        async def chosen(session_id: str | None) -> None:
            if session_id is None:
                return
            try:
                session = Session.resume(self.store, self.pool, self.config, session_id)
            except ShakeError as err:
                self.notify(str(err), severity="error")
                return
            await self.switch_mode("session")
            await self.session_screen.resume(session)

        views = saved_sessions(self.store)
        if not views:
            self.notify("No saved sessions yet: ctrl+n starts one", severity="warning")
            return
        self.push_screen(SessionsScreen(views), chosen)

    def action_cycle_theme(self) -> None:
        names = [n for n in self.available_themes if n.startswith("shake-")]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"Theme: {self.theme}")

    async def action_quit(self) -> None:
        """Cancel the engine's work first; ask about a training run that is going."""
        from tui.screens.quit import STOP, QuitScreen
        from tui.screens.trainer import progress_of

        run = self.training
        if run is None or not run.alive:
            self._quit_now()
            return

        def decided(choice: str | None) -> None:
            if choice is None:
                return
            if choice == STOP:
                request_stop(run.record)
                forget(self.ui_state)
            self._quit_now()

        self.push_screen(QuitScreen(run.record.run_dir.name, progress_of(run.record.run_dir)), decided)

    def _quit_now(self) -> None:
        screen = self.session_screen
        if screen is not None:
            screen.cancel_engine()
        self.exit()

    def get_system_commands(self, screen):
        """Every binding of the app, of the active screen and of the other modes' screens is a palette
        command too: "train" finds the trainer's Train from the session screen (it switches there first)."""
        from tui.screens.dataset import DatasetScreen
        from tui.screens.session import SessionScreen
        from tui.screens.trainer import TrainerScreen

        yield from super().get_system_commands(screen)
        seen = set()
        owners = [(self, None), (screen, None)]
        owners += [(cls, mode) for mode, cls in (("session", SessionScreen), ("dataset", DatasetScreen),
                                                  ("trainer", TrainerScreen)) if not isinstance(screen, cls)]
        for owner, mode in owners:
            for binding in owner.BINDINGS:
                if not isinstance(binding, Binding) or not binding.id or binding.id in seen:
                    continue
                seen.add(binding.id)
                action = binding.action
                key = self.get_key_display(Binding(binding.key.split(",")[0], ""))
                if mode is None:
                    yield SystemCommand(f"{binding.description} ({key})", f"id {binding.id}",
                                        lambda owner=owner, action=action: self.call_later(self._run_for, owner, action))
                else:
                    yield SystemCommand(f"{binding.description} ({key}, {mode})", f"id {binding.id}; opens {mode}",
                                        lambda mode=mode, action=action: self.call_later(self._run_in_mode, mode, action))

    async def _run_in_mode(self, mode: str, action: str) -> None:
        await self.switch_mode(mode)
        await self.run_action(action, self.screen)

    async def _run_for(self, owner, action: str) -> None:
        await self.run_action(action, owner)
