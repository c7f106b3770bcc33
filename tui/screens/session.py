"""The session screen: plan, live agents, diff, run log, feedback, status.

Each engine operation (start, propose, classify feedback, apply a label) is one `@work` thread
method in the exclusive "engine" group, so the UI never waits and two operations never overlap.
A worker reports only through the typed messages below; each carries a `SessionView` taken in the
worker's thread, so the screen never reads the engine's state while the worker changes it. Esc
sets the cancel event: generation stops between tokens, a run is killed, and the session reloads
its last saved state. Quitting does the same (see `ShakeApp.action_quit`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from engine.agents.analyzer import Classification
from engine.errors import AttemptsExhausted, GenerationCancelled, ShakeError
from engine.execution.project import RunSpec
from engine.execution.sanitize import sanitize
from engine.session import EventSink, Proposal, Session, SessionEvent
from engine.session.driver import Decision, Edit, Feedback, Skip
from engine.session.driver import apply as apply_decision
from tui.session_view import SessionView, plural
from tui.widgets.banner import Banner
from tui.widgets.diff import DiffPane
from tui.widgets.discovery_hint import DiscoveryHint
from tui.widgets.feedback import FeedbackBox, FeedbackInput, LabelConfirm
from tui.widgets.live import LivePane
from tui.widgets.plan import LEGEND, PlanView
from tui.widgets.run_log import RunLog
from tui.widgets.status import StatusBar

TABS = {"live": "tab-live", "diff": "tab-diff", "log": "tab-log"}
SKIP_CONFIRM_S = 3.0
Operation = Callable[[threading.Event, EventSink, Callable[[str, str], None]], None]


def one_line(reason: str, limit: int = 200) -> str:
    """A multi-line reason (an exit code, then a traceback) as its first and last lines."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    if not lines:
        return "every attempt failed"
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stall_keys() -> str:
    return ("ctrl+g tries again · e writes the step yourself ($EDITOR) · E edits the step's text · S skips the step "
            "· F6 finds and adds a local teacher · ctrl+n starts another session")


class SessionScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="session.cancel"),
        Binding("ctrl+g", "propose", "Continue", id="session.propose"),
        Binding("i", "focus_feedback", "Feedback", id="session.focus_feedback"),
        Binding("w", "save", "Save", id="session.save"),
        Binding("W", "save_as", "Save as", id="session.save_as", show=False),
        Binding("e", "edit_proposal", "Edit in $EDITOR", id="session.edit_proposal", show=False),
        Binding("E", "edit_step", "Edit step text", id="session.edit_step", show=False),
        Binding("S", "skip_step", "Skip step", id="session.skip_step", show=False),
        Binding("1", "show_tab('live')", "Live", id="session.tab_live", show=False),
        Binding("2", "show_tab('diff')", "Diff", id="session.tab_diff", show=False),
        Binding("3", "show_tab('log')", "Run log", id="session.tab_log", show=False),
        Binding("s", "toggle_split", "Split/unified", id="session.toggle_split", show=False),
        Binding("n", "next_change", "Next change", id="session.next_change", show=False),
        Binding("p", "previous_change", "Prev change", id="session.previous_change", show=False),
        Binding("f", "toggle_follow", "Follow log", id="session.follow_log", show=False),
        Binding("slash", "search_log", "Search log", id="session.search_log", show=False),
        Binding("d", "copy_diff", "Copy diff", id="session.copy_diff", show=False),
        Binding("x", "copy_script", "Copy script", id="session.copy_script", show=False),
        Binding("l", "copy_log", "Copy log", id="session.copy_log", show=False),
        Binding("h", "hide_hint", "Hide the teachers hint", id="session.hide_hint", show=False),
    ]

    # -- what the engine workers report ------------------------------------------------------
    @dataclass
    class Busy(Message):
        """An operation started (or moved on to another phase)."""

        what: str

    @dataclass
    class Idle(Message):
        """The operation ended, however it ended; `view` is the session as it now stands."""

        view: SessionView | None

    @dataclass
    class Started(Message):
        session: Session
        view: SessionView

    @dataclass
    class Progress(Message):
        """Something the session did (plan, instruction, run, row written...)."""

        event: SessionEvent
        view: SessionView

    @dataclass
    class TokenStreamed(Message):
        """A piece of text an agent's teacher just generated."""

        agent: str
        text: str

    @dataclass
    class ProposalReady(Message):
        proposal: Proposal
        view: SessionView

    @dataclass
    class Classified(Message):
        """The analyzer's reading of the feedback, for the user to confirm."""

        classification: Classification

    @dataclass
    class Stalled(Message):
        """Every worker teacher used its attempts on the step; `view.stall` says why."""

        view: SessionView

    @dataclass
    class Cancelled(Message):
        view: SessionView | None

    @dataclass
    class Reworded(Message):
        """The step has new words and a new prompt; `dropped`: the proposal that waited answered the old ones."""

        view: SessionView
        dropped: bool

    @dataclass
    class Failed(Message):
        """An error the user must see; the session is as it was saved last."""

        error: str

    def __init__(self) -> None:
        super().__init__(id="session-screen")
        self.session: Session | None = None
        self.view: SessionView | None = None
        self.cancel_event = threading.Event()
        self.busy = False
        self._skip_armed_until = 0.0  # S pressed once: a second press within SKIP_CONFIRM_S skips

    def compose(self) -> ComposeResult:
        with Horizontal(id="session-body"):
            with Vertical(id="sidebar"):
                yield Static("Plan", classes="pane-title")
                yield PlanView(id="plan")
                yield Static(LEGEND, id="plan-legend", classes="dim-text")
                yield Static("", id="request", classes="dim-text")
            with Vertical(id="main"):
                yield Banner(id="banner")
                hint = DiscoveryHint(id="discovery-hint")
                hint.display = False
                yield hint
                with TabbedContent(id="tabs", initial="tab-live"):
                    with TabPane("1 Live", id="tab-live"):
                        yield LivePane(id="live")
                    with TabPane("2 Diff", id="tab-diff"):
                        yield DiffPane(id="diff")
                    with TabPane("3 Run log", id="tab-log"):
                        yield RunLog(id="run-log")
                search = Input(placeholder="search the run log, Enter for next match, Esc to close", id="log-search")
                search.display = False
                yield search
                yield FeedbackBox(self.app.ui_state.get("feedback_history", []), id="feedback")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.refresh_status()
        if self.session is None:
            self.show_idle_banner()

    def show_idle_banner(self) -> None:
        """No session: what the user can do, whether unfinished sessions wait, and what to install first
        where scripts cannot run here."""
        text = "No session. ctrl+n starts one (or `shake app SCRIPT -r REQUEST`)"
        waiting = self.app.unfinished_sessions
        if waiting:
            text += f"; F5 lists {plural(len(waiting), 'unfinished session')} to resume"
        problem = self.app.sandbox_problem
        if problem:
            self.query_one(Banner).say(Text(f"{text}.\nScripts cannot run yet: {sanitize(problem)}; then start "
                                            "shake again."), "error")
            return
        self.query_one(Banner).say(text + ".")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that mean nothing now leave the footer (as in Posting and lazygit: the footer shows what
        can be done here), so that the focused pane's own keys (the diff's, the log's) fit at 120
        columns. Esc is shown while there is something to leave or stop; ctrl+g is not shown while the
        engine works, nor while a proposal waits for review (it would show the same proposal again)."""
        if action == "cancel":
            return bool(self.busy or self.query_one("#log-search", Input).display
                        or isinstance(self.focused, FeedbackInput))
        if action == "propose":
            return not self.busy and (self.view is None or self.view.status != "review")
        return True

    # -- status -------------------------------------------------------------------------------
    def refresh_status(self) -> None:
        self.refresh_bindings()  # the footer follows the status (see `check_action`)
        status = self.query_one(StatusBar)
        status.teachers = self.app.teacher_summary
        status.rows = self.app.dataset_rows()
        if self.session is not None and not self.busy:
            self.view = SessionView.of(self.session.state)
        view = self.view
        if view is None:
            status.attempts = ""
            return
        step = view.current_step
        if view.status == "stalled" and step is not None:
            attempts = plural(view.stall.attempts, "attempt") if view.stall else "its attempts"
            status.attempts = f"step {step.number}: stalled after {attempts}"
        elif step is not None and view.status not in ("done", "planning"):
            status.attempts = f"step {step.number}: {plural(view.cycle, 'cycle')}, {view.failures} failed"
        else:
            status.attempts = view.progress if view.status in ("done", "planning") else ""
        self.query_one(PlanView).show_steps(view.steps, view.step_index, view.stall)
        self.query_one("#request", Static).update(Text(f"Request: {sanitize(view.request)}"))

    # -- starting and resuming ----------------------------------------------------------------
    async def start(self, script: Path, request: str, project: RunSpec | None = None) -> None:
        """A new session: nothing of the previous one stays on screen."""
        if self.busy:
            self.app.notify("The engine is busy; Esc cancels what it is doing", severity="warning")
            return
        await self._forget_session()
        self.query_one(Banner).say(f"Planning: the planner splits the request for {Path(script).name} "
                                             "into steps…")
        self._launch(self.start_session, script, request, project)

    async def resume(self, session: Session) -> None:
        """Show a saved session as it stands and wait for the user (ctrl+g continues)."""
        if self.busy:
            self.app.notify("The engine is busy; Esc cancels what it is doing", severity="warning")
            return
        await self._forget_session()
        self.session = session
        self.refresh_status()
        view = self.view
        proposal = session.pending_proposal() if view and view.status == "review" else None
        if proposal is not None:
            await self.show_proposal(proposal)
            self.query_one(Banner).say(f"Resumed session {view.id} at {view.progress}: the proposal waits for your "
                                       "feedback (i).")
        elif view and view.status == "done":
            await self.show_finished()
        elif view and view.status == "stalled":
            self.show_stall(view)
        else:
            self.query_one(Banner).say(f"Resumed session {session.id} at {view.progress if view else '?'}: "
                                       "ctrl+g continues.")

    async def _forget_session(self) -> None:
        self.session, self.view = None, None
        self.query_one(LivePane).reset()
        self.query_one(Banner).clear()
        await self.query_one(DiffPane).clear()
        self.query_one(RunLog).clear()
        self.query_one(PlanView).clear_options()
        self.query_one("#request", Static).update("")
        self.query_one(StatusBar).author = ""
        self.refresh_status()

    # -- the engine workers -------------------------------------------------------------------
    def _launch(self, worker: Callable, *args) -> None:
        """Start an engine worker. From now on only the worker touches the session, and Esc stops it."""
        self.busy = True
        self.cancel_event = threading.Event()
        worker(*args)

    def _run(self, what: str, operation: Operation) -> None:
        """The frame every engine worker shares: cancel event, event and token sinks, one result
        message for every way an operation can end."""
        cancel = self.cancel_event

        def emit(event: SessionEvent) -> None:
            # After Esc or quit, the engine's next event ends the operation before it saves anything:
            # a run killed by the cancel must not be stored as a failed attempt.
            if cancel.is_set():
                raise GenerationCancelled("cancelled by the user")
            self.post_message(self.Progress(event, self._view()))

        def on_token(agent: str, text: str) -> None:
            self.post_message(self.TokenStreamed(agent, text))

        self.post_message(self.Busy(what))
        try:
            operation(cancel, emit, on_token)
        except GenerationCancelled:
            self.post_message(self.Cancelled(self._view()))
        except AttemptsExhausted:
            self.post_message(self.Stalled(self._view()))
        except ShakeError as err:
            self.post_message(self.Failed(str(err)))
        except Exception as err:  # never a traceback on screen; the message says what broke
            self.post_message(self.Failed(f"Unexpected error: {type(err).__name__}: {err}"))
        finally:
            self.post_message(self.Idle(self._view()))

    def _view(self) -> SessionView | None:
        return SessionView.of(self.session.state) if self.session is not None else None

    def _propose_and_report(self, cancel, emit, on_token) -> None:
        self.post_message(self.Busy("the agents are working"))
        proposal = self.session.propose(emit=emit, on_token=on_token, cancel=cancel)
        self.post_message(self.ProposalReady(proposal, self._view()))

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def start_session(self, script: Path, request: str, project: RunSpec | None = None) -> None:
        app = self.app

        def operation(cancel, emit, on_token) -> None:
            self.session = Session.start(app.store, app.pool, app.config, script, request, project=project)
            self.post_message(self.Started(self.session, self._view()))
            self.session.plan(emit=emit, cancel=cancel)
            self._propose_and_report(cancel, emit, on_token)

        self._run("planning", operation)

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def propose(self) -> None:
        self._run("the agents are working", self._propose_and_report)

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def classify(self, text: str) -> None:
        def operation(cancel, emit, on_token) -> None:
            self.post_message(self.Classified(self.session.classify(text, cancel=cancel)))

        self._run("the analyzer reads your feedback", operation)

    def _change_then_propose(self, what: str, decision: Decision) -> None:
        """The user's decision (a label, an edit, a skip) carried out by the session driver, as the CLI and
        the task episodes carry theirs out, then the next proposal unless the session is done."""
        def operation(cancel, emit, on_token) -> None:
            apply_decision(self.session, decision, emit)
            if self.session.status != "done":
                self._propose_and_report(cancel, emit, on_token)

        self._run(what, operation)

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def apply_label(self, classification: Classification) -> None:
        self._change_then_propose("recording feedback", Feedback(classification))

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def accept_edit(self, script: str) -> None:
        """The user's own edit is the step's accepted output (origin `user_edit`)."""
        self._change_then_propose("recording your edit", Edit(script))

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def skip(self) -> None:
        self._change_then_propose("skipping the step", Skip())

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def reword_step(self, text: str) -> None:
        def operation(cancel, emit, on_token) -> None:
            dropped = self.session.status == "review"
            self.session.edit_step(text)
            self.post_message(self.Reworded(self._view(), dropped))

        self._run("saving the step's text", operation)

    # -- worker reports -----------------------------------------------------------------------
    @on(Busy)
    def on_busy(self, message: Busy) -> None:
        self.busy = True
        self.refresh_bindings()
        self.query_one(StatusBar).activity = message.what

    @on(Idle)
    def on_idle(self, message: Idle) -> None:
        self.busy = False
        self.query_one(StatusBar).activity = "idle"
        self.refresh_status()

    @on(Started)
    def on_started(self, message: Started) -> None:
        self.session, self.view = message.session, message.view
        self.refresh_status()

    @on(TokenStreamed)
    def on_token(self, message: TokenStreamed) -> None:
        self.query_one(LivePane).stream(message.agent, message.text)

    @on(Progress)
    async def on_progress(self, message: Progress) -> None:
        event, self.view = message.event, message.view
        live = self.query_one(LivePane)
        if event.kind == "plan":
            steps = plural(len(message.view.steps), "step")
            self.query_one(Banner).say(f"Plan: {steps}. The lead writes the first instruction…")
        elif event.kind == "instruction":
            self.query_one(Banner).clear()
            self.query_one(TabbedContent).active = "tab-live"
            live.set_instruction(event.text, event.data.get("cycle", 0), event.data.get("teacher", ""))
        elif event.kind == "run":
            self.query_one(RunLog).show_text(event.text)
        elif event.kind in ("failed", "switch", "note", "row"):
            live.note(event.text)
            if event.kind in ("failed", "switch"):
                self.app.notify(event.text, severity="warning")
        elif event.kind == "candidate":
            live.note(event.text)
            if event.data.get("kind") == "ok" and event.data.get("script") is not None:
                await self.preview_candidate(event)
        elif event.kind in ("accepted", "skipped"):
            self.app.notify(event.text)
        elif event.kind == "done":
            await self.show_finished()
        self.refresh_status()

    @on(ProposalReady)
    async def on_proposal(self, message: ProposalReady) -> None:
        self.view = message.view
        self.query_one(Banner).clear()
        await self.show_proposal(message.proposal)
        self.refresh_status()

    @on(Reworded)
    async def on_reworded(self, message: Reworded) -> None:
        self.view = message.view
        step = message.view.current_step
        said = f"Step {step.number if step else '?'} has new words: the next cycle starts a new prompt from them"
        if message.dropped:
            await self.query_one(DiffPane).clear()
            said += "; the proposal answered the old words and is dropped"
        if message.view.status == "stalled":  # the stall and its keys stay in the banner
            self.app.notify(said + ".")
        else:
            self.query_one(Banner).say(said + ". ctrl+g continues.")
        self.refresh_status()

    @on(Classified)
    def on_classified(self, message: Classified) -> None:
        self.query_one(FeedbackBox).confirm(message.classification)

    @on(Stalled)
    def on_stalled(self, message: Stalled) -> None:
        self.view = message.view
        self.show_stall(message.view)
        self.refresh_status()

    def show_stall(self, view: SessionView) -> None:
        step, stall = view.current_step, view.stall
        text = Text()
        attempts = f" after {plural(stall.attempts, 'attempt')}" if stall else ""
        text.append(f"Step {step.number if step else '?'} stalled{attempts}", style="bold")
        if stall:
            text.append(f": {sanitize(one_line(stall.reason))}")  # a run's words: plain, never markup
        text.append("\n" + stall_keys())
        self.query_one(Banner).say(text, "error")
        self.query_one(TabbedContent).active = "tab-live"

    @on(Cancelled)
    def on_cancelled(self, message: Cancelled) -> None:
        self.view = message.view
        self.app.notify("Cancelled; the session is as it was before this cycle (ctrl+g continues)", severity="warning")

    @on(Failed)
    def on_failed(self, message: Failed) -> None:
        self.app.notify(message.error, severity="error", timeout=10)
        self.query_one(Banner).say(message.error, "error")

    async def show_proposal(self, proposal: Proposal) -> None:
        teacher = proposal.teacher
        self.query_one(StatusBar).author = f"{teacher.get('name')} ({teacher.get('backend')})"
        await self.query_one(DiffPane).show(proposal.base_script, proposal.script)
        self.query_one(RunLog).show_text(proposal.run.log())
        if proposal.warnings:  # the cheat guard's finding: plain text, never markup
            self.query_one(Banner).say(" ".join(sanitize(w) for w in proposal.warnings), "warning")
        self.query_one(TabbedContent).active = "tab-diff"
        # The diff has the focus, so that n / p / s / d act on it at once; i starts typing feedback.
        self.query_one(DiffPane).focus()

    async def preview_candidate(self, event: SessionEvent) -> None:
        """The first candidate that runs is shown at once, while the others are sampled; the best of
        them comes for review (engine/session/candidates.py)."""
        view = self._view()
        if view is None:
            return
        index, of, more = event.data.get("index", 0), event.data.get("of", 1), event.data.get("remaining", 0)
        await self.query_one(DiffPane).show(view.current_script, event.data["script"])
        coming = f"; {plural(more, 'more candidate')} coming, the best of them comes for review" if more else ""
        self.query_one(Banner).say(f"Candidate {index + 1} of {of} runs (its diff is shown){coming}.")

    async def show_finished(self) -> None:
        view = self._view()
        if view is None:
            return
        self.query_one(StatusBar).author = ""
        await self.query_one(DiffPane).show(view.original_script, view.current_script)
        self.query_one(TabbedContent).active = "tab-diff"
        self.query_one(DiffPane).focus()
        finished = ("Every step is accepted" if not view.skipped_steps else
                    f"The session is finished: {view.progress} (a skipped step is not done)")
        self.query_one(Banner).say(
            f"{finished}. w saves the script to {view.script_path.name} (with a diff and a backup), "
            "W saves it elsewhere, x copies it.", "success")

    # -- feedback -----------------------------------------------------------------------------
    @on(FeedbackBox.Submitted)
    def on_feedback(self, message: FeedbackBox.Submitted) -> None:
        if self.session is None or self.session.status != "review":
            self.app.notify("There is no proposal to review yet", severity="warning")
            return
        if self.busy:
            self.app.notify("The engine is busy; Esc cancels what it is doing", severity="warning")
            return
        self.app.ui_state.set("feedback_history", self.query_one(FeedbackInput).history)
        self._launch(self.classify, message.text)

    @on(LabelConfirm.Committed)
    def on_label(self, message: LabelConfirm.Committed) -> None:
        if self.session is None or self.session.status != "review" or self.busy:
            return
        self.app.notify(f"{message.classification.name}: recorded")
        self._launch(self.apply_label, message.classification)

    # -- actions ------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        """Esc: close the search, stop the engine, and leave a text box (so that keys act again)."""
        search = self.query_one("#log-search", Input)
        if search.display:
            search.display = False
            self.query_one(RunLog).focus()
            self.refresh_bindings()
            return
        if self.busy:
            self.cancel_event.set()
            self.app.notify("Cancelling…")
        if isinstance(self.focused, FeedbackInput):
            self.query_one(DiffPane if self.query_one(TabbedContent).active == "tab-diff" else PlanView).focus()

    def cancel_engine(self) -> bool:
        """Stop the running operation, if any (quitting); True when one was running."""
        if self.busy:
            self.cancel_event.set()
        return self.busy

    def action_propose(self) -> None:
        if self.session is None:
            self.app.notify("No session: ctrl+n starts one", severity="warning")
        elif self.busy:  # the palette can ask while the footer hides it
            self.app.notify("The engine is already working", severity="warning")
        elif self.session.status == "done":
            self.app.notify("Every step is accepted: w saves the script, ctrl+n starts a new session")
        elif self.session.status == "planning":
            self.app.notify("The session was saved before its plan: planning again")
            self._launch(self.replan)
        elif self.session.status in ("working", "stalled", "review"):
            self.query_one(Banner).clear()
            self._launch(self.propose)

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def replan(self) -> None:
        def operation(cancel, emit, on_token) -> None:
            self.session.plan(emit=emit, cancel=cancel)
            self._propose_and_report(cancel, emit, on_token)

        self._run("planning", operation)

    def action_show_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = TABS[name]
        target = {"live": "#live-stream", "diff": "#diff", "log": "#run-log"}[name]
        self.query_one(target).focus()

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
        self.refresh_bindings()

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
        self.app.notify(f"Copied the {what} to the clipboard ({plural(len(text.splitlines()), 'line')})")

    def action_hide_hint(self) -> None:
        hint = self.query_one(DiscoveryHint)
        if hint.display:
            hint.action_dismiss()

    def action_focus_feedback(self) -> None:
        self.query_one(FeedbackInput).focus()

    # -- steering: the user's own edit, the step's text, skipping it ---------------------------
    def _can_steer(self, what: str) -> bool:
        if self.session is None:
            self.app.notify(f"No session: nothing to {what}", severity="warning")
            return False
        if self.busy:
            self.app.notify(f"Wait for the engine (or Esc) before you {what}", severity="warning")
            return False
        return True

    def action_edit_proposal(self) -> None:
        """Open the proposal in $EDITOR; what the user saves can become the step's accepted output."""
        from tui.editor import edit_text
        from tui.screens.ask import ConfirmDiffScreen

        if not self._can_steer("edit"):
            return
        proposal = self.session.pending_proposal()
        stalled = proposal is None and self.session.status == "stalled"
        if proposal is None and not stalled:
            self.app.notify("There is no proposal to edit yet", severity="warning")
            return
        # on a stalled step the teachers gave nothing to edit: the user starts from the current script
        base = proposal.script if proposal is not None else self.session.current_script
        try:
            edited = edit_text(self.app, base, name=self.session_script_name())
        except ShakeError as err:
            self.app.notify(str(err), severity="error", timeout=10)
            return
        if not edited.changed:
            self.app.notify("The script is unchanged: nothing was taken from the editor")
            return

        def decided(take: bool | None) -> None:
            if take:
                self.query_one(Banner).clear()  # the stall (or the cheat guard's warning) is answered
                self._launch(self.accept_edit, edited.text)

        if stalled:
            title, rows, button = ("Your script for the stalled step",
                                   "the failed attempts' rows get it as their chosen", "Accept my script")
        else:
            title, rows, button = ("Your edit of the proposal",
                                   "the proposal it replaces is stored as a Further-edit row", "Accept my edit")
        name = self.session_script_name()
        names = (f"{'current script' if stalled else 'proposal'}: {name}", f"your edit: {name}")
        self.app.push_screen(ConfirmDiffScreen(
            title, f"Accepting makes your script the step's output ({rows}): the dataset learns from your fix.",
            base, edited.text, button, names=names), decided)

    def session_script_name(self) -> str:
        return SessionView.of(self.session.state).script_path.name or "script.py"

    def action_edit_step(self) -> None:
        from tui.screens.ask import AskTextScreen

        if not self._can_steer("edit the step"):
            return
        view = SessionView.of(self.session.state)
        step = view.current_step
        if step is None or view.status in ("done", "planning"):
            self.app.notify("There is no current step to edit", severity="warning")
            return

        def kept(text: str | None) -> None:
            if text is not None and text != step.text:
                self._launch(self.reword_step, text)

        self.app.push_screen(AskTextScreen(f"Step {step.number}: what should it do?", step.text,
                                           "The step starts a new prompt in the new words; the rows so far answer the old ones and are "
                                           "never given its accepted script. "
                                           "Enter keeps it · Esc leaves it as it was"), kept)

    def action_skip_step(self) -> None:
        if not self._can_steer("skip a step"):
            return
        view = SessionView.of(self.session.state)
        step = view.current_step
        if step is None or view.status in ("done", "planning"):
            self.app.notify("There is no step to skip", severity="warning")
            return
        now = time.monotonic()
        if now > self._skip_armed_until:
            self._skip_armed_until = now + SKIP_CONFIRM_S
            self.app.notify(f"Press S again to skip step {step.number} (it stays undone; its rows are never trained "
                            "on)", severity="warning", timeout=SKIP_CONFIRM_S)
            return
        self._skip_armed_until = 0.0
        self.query_one(Banner).clear()
        self._launch(self.skip)

    # -- saving -------------------------------------------------------------------------------
    def action_save(self) -> None:
        self._open_save(ask_path=False)

    def action_save_as(self) -> None:
        self._open_save(ask_path=True)

    def _open_save(self, *, ask_path: bool) -> None:
        from tui.screens.save import SaveScreen

        if self.session is None:
            self.app.notify("No session: nothing to save yet", severity="warning")
            return
        if self.busy:
            self.app.notify("Wait for the engine (or Esc) before saving", severity="warning")
            return
        view = SessionView.of(self.session.state)
        self.app.push_screen(SaveScreen(view, self.app.config.data_dir / "backups", ask_path=ask_path))
