"""The session screen: plan, live agents, diff, run log, feedback, status.

All engine work (planning, generation, runs, the analyzer) happens in one thread worker group
("engine", exclusive), so the UI never waits; the worker reports through messages. Esc sets the
cancel event: generation stops between tokens, a run is killed, and the session reloads its last
saved state.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from engine.errors import GenerationCancelled, ShakeError
from engine.session import Proposal, Session, SessionEvent
from tui.messages import EngineBusy, EngineEvent, FeedbackSubmitted, LabelCommitted, TokenStreamed
from tui.widgets.diff import DiffPane
from tui.widgets.feedback import FeedbackBox
from tui.widgets.live import LivePane
from tui.widgets.plan import PlanView
from tui.widgets.run_log import RunLog
from tui.widgets.status import StatusBar


class SessionScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="session.cancel"),
        Binding("ctrl+g", "propose", "Continue", id="session.propose"),
        Binding("s", "toggle_split", "Split/unified", id="session.toggle_split"),
        Binding("n", "next_change", "Next change", id="session.next_change"),
        Binding("p", "previous_change", "Prev change", id="session.previous_change"),
        Binding("f", "toggle_follow", "Follow log", id="session.follow_log"),
        Binding("slash", "search_log", "Search log", id="session.search_log"),
        Binding("d", "copy_diff", "Copy diff", id="session.copy_diff"),
        Binding("x", "copy_script", "Copy script", id="session.copy_script"),
        Binding("l", "copy_log", "Copy log", id="session.copy_log"),
        Binding("i", "focus_feedback", "Feedback", id="session.focus_feedback"),
    ]

    def __init__(self) -> None:
        super().__init__(id="session-screen")
        self.session: Session | None = None
        self.cancel_event = threading.Event()
        self.busy = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="session-body"):
            with Vertical(id="sidebar"):
                yield Static("Plan", classes="pane-title")
                yield PlanView(id="plan")
                yield Static("", id="request", classes="dim-text")
            with Vertical(id="main"):
                with TabbedContent(id="tabs", initial="tab-live"):
                    with TabPane("Live", id="tab-live"):
                        yield LivePane(id="live")
                    with TabPane("Diff", id="tab-diff"):
                        yield DiffPane(id="diff")
                    with TabPane("Run log", id="tab-log"):
                        yield RunLog(id="run-log")
                search = Input(placeholder="search the run log, Enter for next match, Esc to close", id="log-search")
                search.display = False
                yield search
                yield FeedbackBox(self.app.ui_state.get("feedback_history", []), id="feedback")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_status()
        if self.session is None:
            self.query_one(LivePane).note("No session. Press ctrl+n to start one (or run `shake app SCRIPT -r REQUEST`).")

    # -- status -------------------------------------------------------------------------------
    def refresh_status(self) -> None:
        status = self.query_one(StatusBar)
        status.teachers = self.app.teacher_summary
        status.rows = self.app.dataset_rows()
        if self.session is not None and self.session.steps and self.session.status not in ("done", "planning"):
            step = self.session.state.step
            status.attempts = f"step {self.session.step_index + 1}: cycle {step.cycle}, {step.failures} failed"
        else:
            status.attempts = ""
        if self.session is not None:
            self.query_one(PlanView).show_steps(self.session.steps, self.session.step_index)
            self.query_one("#request", Static).update(Text(f"Request: {self.session.state.request}"))

    @on(EngineBusy)
    def on_busy(self, message: EngineBusy) -> None:
        self.busy = message.busy
        self.query_one(StatusBar).activity = message.what if message.busy else "idle"

    # -- starting and resuming ----------------------------------------------------------------
    def start(self, script: Path, request: str) -> None:
        self.run_engine("start", script=script, request=request)

    def resume(self, session: Session) -> None:
        self.session = session
        self.refresh_status()
        self.run_engine("propose")

    # -- the engine worker --------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def run_engine(self, action: str, **kw) -> None:
        self.cancel_event = cancel = threading.Event()
        app = self.app

        def emit(event: SessionEvent) -> None:
            self.post_message(EngineEvent(event))

        def on_token(agent: str, text: str) -> None:
            self.post_message(TokenStreamed(agent, text))

        try:
            if action == "start":
                self.post_message(EngineBusy(True, "planning"))
                self.session = Session.start(app.store, app.pool, app.config, kw["script"], kw["request"])
                app.call_from_thread(self.refresh_status)
                self.session.plan(emit=emit, cancel=cancel)
            elif action == "feedback":
                self.post_message(EngineBusy(True, "recording feedback"))
                self.session.apply_feedback(kw["classification"], emit=emit)
            elif action == "classify":
                self.post_message(EngineBusy(True, "the analyzer reads your feedback"))
                classification = self.session.classify(kw["text"], cancel=cancel)
                app.call_from_thread(self.query_one(FeedbackBox).confirm, classification)
                return
            if self.session.status == "done":
                return
            self.post_message(EngineBusy(True, "the agents are working"))
            self.session.propose(emit=emit, on_token=on_token, cancel=cancel)
        except GenerationCancelled:
            app.call_from_thread(app.notify, "Cancelled; the session is as it was before this cycle", severity="warning")
        except ShakeError as err:
            app.call_from_thread(app.notify, str(err), severity="error", timeout=10)
        except Exception as err:  # never a traceback on screen; the message says what broke
            app.call_from_thread(app.notify, f"Unexpected error: {type(err).__name__}: {err}", severity="error", timeout=15)
        finally:
            self.post_message(EngineBusy(False))
            app.call_from_thread(self.refresh_status)

    @on(TokenStreamed)
    def on_token(self, message: TokenStreamed) -> None:
        self.query_one(LivePane).stream(message.agent, message.text)

    @on(EngineEvent)
    async def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        live = self.query_one(LivePane)
        tabs = self.query_one(TabbedContent)
        if event.kind == "plan":
            self.refresh_status()
        elif event.kind == "instruction":
            tabs.active = "tab-live"
            live.set_instruction(event.text, event.data.get("cycle", 0), event.data.get("teacher", ""))
        elif event.kind == "run":
            self.query_one(RunLog).show_text(event.text)
        elif event.kind == "proposal":
            proposal = self.session.pending_proposal() if self.session else None
            if proposal is not None:
                await self.show_proposal(proposal)
        elif event.kind in ("failed", "switch", "note", "row"):
            live.note(event.text)
            if event.kind in ("failed", "switch"):
                self.app.notify(event.text, severity="warning")
        elif event.kind == "accepted":
            self.app.notify(event.text)
        elif event.kind == "done":
            self.app.notify("Every step is accepted. The finished script is in the diff tab; x copies it.", timeout=10)
            await self.query_one(DiffPane).show(self.session.state.original_script, self.session.current_script)
            tabs.active = "tab-diff"
        self.refresh_status()

    async def show_proposal(self, proposal: Proposal) -> None:
        teacher = proposal.teacher
        self.query_one(StatusBar).author = f"{teacher.get('name')} ({teacher.get('backend')})"
        await self.query_one(DiffPane).show(proposal.base_script, proposal.script)
        self.query_one(RunLog).show_text(proposal.run.log())
        self.query_one(TabbedContent).active = "tab-diff"
        self.query_one("#feedback-input").focus()

    # -- feedback -----------------------------------------------------------------------------
    @on(FeedbackSubmitted)
    def on_feedback(self, message: FeedbackSubmitted) -> None:
        if self.session is None or self.session.status != "review":
            self.app.notify("There is no proposal to review yet", severity="warning")
            return
        if self.busy:
            self.app.notify("The engine is busy; Esc cancels what it is doing", severity="warning")
            return
        self.app.ui_state.set("feedback_history", self.query_one("#feedback-input").history)
        self.run_engine("classify", text=message.text)

    @on(LabelCommitted)
    def on_label(self, message: LabelCommitted) -> None:
        if self.session is None or self.session.status != "review":
            return
        self.app.notify(f"{message.classification.name}: recorded")
        self.run_engine("feedback", classification=message.classification)

    # -- actions ------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        search = self.query_one("#log-search", Input)
        if search.display:
            search.display = False
            return
        if self.busy:
            self.cancel_event.set()
            self.app.notify("Cancelling…")

    def action_propose(self) -> None:
        if self.session is None:
            self.app.notify("No session: ctrl+n starts one", severity="warning")
        elif self.busy:
            self.app.notify("The engine is already working", severity="warning")
        elif self.session.status in ("working", "stalled", "review"):
            self.run_engine("propose")

    def action_toggle_split(self) -> None:
        diff = self.query_one(DiffPane)
        diff.split = not diff.split

    def action_next_change(self) -> None:
        self.query_one(TabbedContent).active = "tab-diff"
        self.query_one(DiffPane).jump(1)

    def action_previous_change(self) -> None:
        self.query_one(TabbedContent).active = "tab-diff"
        self.query_one(DiffPane).jump(-1)

    def action_toggle_follow(self) -> None:
        on_ = self.query_one(RunLog).toggle_follow()
        self.app.notify(f"Follow mode {'on' if on_ else 'off'}")

    def action_search_log(self) -> None:
        self.query_one(TabbedContent).active = "tab-log"
        search = self.query_one("#log-search", Input)
        search.display = True
        search.focus()

    @on(Input.Submitted, "#log-search")
    def on_search(self, event: Input.Submitted) -> None:
        event.stop()
        if self.query_one(RunLog).search(event.value) is None:
            self.app.notify(f"'{event.value}' is not in the run log", severity="warning")

    def action_copy_diff(self) -> None:
        from engine.session import unified_diff

        diff = self.query_one(DiffPane)
        self._copy(unified_diff(diff.before, diff.after), "diff")

    def action_copy_script(self) -> None:
        diff = self.query_one(DiffPane)
        script = diff.after or (self.session.current_script if self.session else "")
        self._copy(script, "script")

    def action_copy_log(self) -> None:
        self._copy("\n".join(self.query_one(RunLog).lines), "run log")

    def _copy(self, text: str, what: str) -> None:
        if not text:
            self.app.notify(f"No {what} to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.app.notify(f"Copied the {what} to the clipboard ({len(text.splitlines())} lines)")

    def action_focus_feedback(self) -> None:
        self.query_one("#feedback-input").focus()
