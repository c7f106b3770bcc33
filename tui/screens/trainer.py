"""The trainer: settings, start, stop and resume a run in its own process; live loss curves from its
metrics file; evaluation with its result, or the reason it failed, on screen; the scoreboard (the run's
student against the teacher on the held-out steps, `shake eval RUN --scoreboard`) under it.

A run outlives the app when the user quits and leaves it running (see `tui.training`): at the next
start the app finds it again, and this screen shows it live.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from engine.student.runs import RunDir, list_runs, runs_root
from tui import train_settings
from tui.training import launch, remember, request_stop

CURVES = (("loss", "total"), ("kd", "KD"), ("odds_ratio", "OR"), ("nll", "NLL"))


def failure_reason(output: str) -> str:
    """The one line a failed `shake` command printed for the user (`shake: ...`), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("shake: "):
            return line.removeprefix("shake: ")
    return lines[-1] if lines else "no output"


class TrainerScreen(Screen):
    BINDINGS = [
        Binding("t", "start", "Train", id="trainer.start"),
        Binding("c", "settings", "Settings", id="trainer.settings"),
        Binding("S", "stop", "Stop", id="trainer.stop"),
        Binding("R", "resume", "Continue", id="trainer.resume", tooltip="Resume the stopped run from its last checkpoint"),
        Binding("v", "evaluate", "Eval", id="trainer.eval", tooltip="Held-out loss and pass rate (shake eval)"),
        Binding("b", "scoreboard", "Score", id="trainer.scoreboard",
                tooltip="The student against its teacher on the held-out steps (shake eval --scoreboard)"),
    ]

    @dataclass
    class Evaluated(Message):
        """`shake eval` finished: its held-out figures."""

        run_dir: Path
        result: dict

    @dataclass
    class Scored(Message):
        """`shake eval --scoreboard` finished: RUN/scoreboard.json is written."""

        run_dir: Path

    @dataclass
    class EvaluationFailed(Message):
        """`shake eval` refused or failed: the reason it gave."""

        run_dir: Path
        reason: str

    def __init__(self) -> None:
        super().__init__(id="trainer-screen")
        self.run_dir: Path | None = None
        self.shown_steps = -1
        self.evaluating = False

    def compose(self) -> ComposeResult:
        with Vertical(id="trainer-body"):
            yield Static("No run yet. t starts one (the command is `shake train`).", id="run-info",
                         classes="pane-title")
            yield Static("", id="train-settings-summary", classes="dim-text")
            with Horizontal(id="progress-row"):
                yield ProgressBar(total=1, show_eta=True, id="progress")
                yield Static("", id="speed")
            yield PlotextPlot(id="curves")
            yield Static("", id="eval-results")
        yield Footer(compact=True)

    @property
    def runs_root(self) -> Path:
        return runs_root(self.app.config.data_dir)

    @property
    def training(self):
        return self.app.training

    @property
    def running(self) -> bool:
        run = self.training
        return run is not None and run.record.run_dir == self.run_dir and run.alive

    def on_mount(self) -> None:
        if self.training is not None:
            self.run_dir = self.training.record.run_dir
        else:
            runs = list_runs(self.app.config.data_dir)
            self.run_dir = runs[-1].path if runs else None
        self.show_settings()
        self.set_interval(0.5, self.poll)
        self.poll()

    # -- settings -----------------------------------------------------------------------------
    def settings(self) -> dict[str, object]:
        try:
            return train_settings.parse(train_settings.load(self.app.ui_state))
        except train_settings.SettingsError:
            return {}  # remembered values the trainer no longer accepts: the defaults apply

    def show_settings(self) -> None:
        self.query_one("#train-settings-summary", Static).update(
            Text("Settings: " + train_settings.summary(self.settings())))

    def action_settings(self) -> None:
        from tui.screens.train_settings import TrainSettingsScreen

        def kept(values: dict[str, str] | None) -> None:
            if values is not None:
                self.app.ui_state.set(train_settings.STATE_KEY, values)
                self.show_settings()
                self.app.notify("Training settings kept")

        self.app.push_screen(TrainSettingsScreen(train_settings.load(self.app.ui_state)), kept)

    # -- runs ---------------------------------------------------------------------------------
    def launch(self, args: list[str]) -> None:
        if self.training is not None and self.training.alive:
            self.app.notify("A run is already going; S stops it", severity="warning")
            return
        assert self.run_dir is not None
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        RunDir(self.run_dir).stop.unlink(missing_ok=True)
        log = RunDir(self.run_dir).log
        run = launch(self.app.train_command, self.run_dir, log, args)
        self.app.training = run
        remember(self.app.ui_state, run.record)
        self.shown_steps = -1
        self.query_one("#eval-results", Static).update("")
        self.app.notify(f"Training {self.run_dir.name} in the background (log: {log})")

    def action_start(self) -> None:
        if self.app.dataset_complete_rows() == 0:
            self.app.notify("The dataset has no accepted rows yet: accept a step in a session first", severity="warning")
            return
        self.runs_root.mkdir(parents=True, exist_ok=True)
        self.run_dir = self.runs_root / _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
        args = train_settings.to_args(self.settings()) + list(self.app.train_args)
        self.launch(["--run-dir", str(self.run_dir), *args])

    def action_stop(self) -> None:
        if not self.running:
            self.app.notify("No run is going", severity="warning")
            return
        request_stop(self.training.record)
        self.app.notify("Stopping after the current step (a checkpoint is saved; R resumes)")

    def action_resume(self) -> None:
        if self.run_dir is None or not RunDir(self.run_dir).started:
            self.app.notify("No run to resume", severity="warning")
            return
        if RunDir(self.run_dir).finished:
            self.app.notify(f"{self.run_dir.name} is finished; t starts a new run", severity="warning")
            return
        self.launch(["--resume", "--run-dir", str(self.run_dir)])

    # -- evaluation ---------------------------------------------------------------------------
    def can_evaluate(self) -> bool:
        if self.run_dir is None:
            self.app.notify("No run to evaluate", severity="warning")
            return False
        if self.running:
            self.app.notify("Wait for the run to finish (or stop it) before evaluating", severity="warning")
            return False
        if self.evaluating:
            self.app.notify("An evaluation is already running", severity="warning")
            return False
        return True

    def action_evaluate(self) -> None:
        if not self.can_evaluate():
            return
        self.evaluating = True
        self.query_one("#eval-results", Static).update(Text("Evaluating on the held-out rows…"))
        self.query_one("#eval-results", Static).set_classes("")
        self.evaluate(self.run_dir)

    def action_scoreboard(self) -> None:
        if not self.can_evaluate():
            return
        self.evaluating = True
        self.query_one("#eval-results", Static).update(
            Text("Scoring the student and its teacher on the held-out steps (each answer is generated and run)…"))
        self.query_one("#eval-results", Static).set_classes("")
        self.score(self.run_dir)

    def run_shake(self, run_dir: Path, *args: str) -> str | None:
        """`shake eval RUN ARGS` in its own process (quitting the app ends it): its output, or None when
        it was cancelled or failed (the failure's reason posted for the screen)."""
        worker = get_current_worker()
        proc = subprocess.Popen([*self.app.shake_command, "eval", str(run_dir), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        while proc.poll() is None:
            if worker.is_cancelled:
                proc.kill()
                proc.wait()
                return None
            time.sleep(0.1)
        out, err = proc.communicate()
        if proc.returncode != 0:
            self.post_message(self.EvaluationFailed(run_dir, failure_reason(err or out)))
            return None
        return out

    @work(thread=True, exclusive=True, group="eval", exit_on_error=False)
    def evaluate(self, run_dir: Path) -> None:
        """`shake eval RUN`: held-out loss and pass rate."""
        out = self.run_shake(run_dir)
        if out is None:
            return
        try:
            result = json.loads(out[out.index("{"):])
        except ValueError:
            self.post_message(self.EvaluationFailed(run_dir, f"unreadable output: {failure_reason(out)}"))
            return
        self.post_message(self.Evaluated(run_dir, result))

    @work(thread=True, exclusive=True, group="eval", exit_on_error=False)
    def score(self, run_dir: Path) -> None:
        """`shake eval RUN --scoreboard`: the student against its teacher, step by step."""
        if self.run_shake(run_dir, "--scoreboard") is not None:
            self.post_message(self.Scored(run_dir))

    @on(Scored)
    def on_scored(self, message: Scored) -> None:
        self.evaluating = False
        self.show_eval(self.held_out_figures(message.run_dir))

    def held_out_figures(self, run_dir: Path) -> dict:
        try:
            return json.loads(RunDir(run_dir).eval_report.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    @on(Evaluated)
    def on_evaluated(self, message: Evaluated) -> None:
        self.evaluating = False
        self.show_eval(message.result)

    @on(EvaluationFailed)
    def on_evaluation_failed(self, message: EvaluationFailed) -> None:
        self.evaluating = False
        results = self.query_one("#eval-results", Static)
        results.update(Text(f"Evaluation of {message.run_dir.name} failed: {message.reason}"))
        results.set_classes("error-text")

    def show_eval(self, data: dict) -> None:
        from trainer.scoreboard import Scoreboard  # here, not at the top: the first paint does not pay for it

        lines = []
        if data:
            parts = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in data.items())
            lines.append(f"Held-out: {parts}")
        try:
            board = Scoreboard.load(self.run_dir) if self.run_dir is not None else None
        except (OSError, ValueError, KeyError, TypeError):
            board = None
        if board is not None:
            lines += ["Scoreboard (b scores again):", *board.lines()]
        results = self.query_one("#eval-results", Static)
        results.update(Text("\n".join(lines)))
        results.set_classes("")

    # -- live view ----------------------------------------------------------------------------
    def run_state(self) -> str:
        run = self.training
        if self.running:
            return f"running (pid {run.record.pid})"
        if RunDir(self.run_dir).finished:
            return "finished"
        if run is not None and run.record.run_dir == self.run_dir and run.exit_code not in (None, 0):
            return f"failed (exit {run.exit_code}; see {run.record.log})"
        return "stopped (R resumes it)"

    def poll(self) -> None:
        if self.run_dir is None:
            return
        rows = RunDir(self.run_dir).read_metrics()
        latest = RunDir(self.run_dir).latest_checkpoint(warn=False)  # COMPLETE ones only: a partial save is no checkpoint
        info = f"Run {self.run_dir.name}: {self.run_state()}; last checkpoint: {latest.path.name if latest else 'none'}"
        self.query_one("#run-info", Static).update(Text(info))
        shown = [RunDir(self.run_dir).eval_report, RunDir(self.run_dir).scoreboard]
        if any(p.exists() for p in shown) and not self.evaluating and not self.query_one(
                "#eval-results", Static).has_class("error-text"):
            self.show_eval(self.held_out_figures(self.run_dir))
        if not rows and self.running:  # before the first step: what the run is doing, not a bare 0 %
            phase = RunDir(self.run_dir).read_phase() or "starting the trainer"
            self.query_one("#speed", Static).update(Text(f"{phase}…"))
        if not rows or len(rows) == self.shown_steps:
            return
        self.shown_steps = len(rows)
        last = rows[-1]
        bar = self.query_one(ProgressBar)
        bar.update(total=last.get("total_steps") or len(rows), progress=last["step"])
        self.query_one("#speed", Static).update(
            Text(f"{last.get('tokens_per_s') or 0:.0f} tok/s · loss {last.get('loss') or 0:.3f}"))
        self.draw(rows)

    def draw(self, rows: list[dict]) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title("DORPO loss")
        steps = [r["step"] for r in rows]
        values = []
        for key, label in CURVES:
            ys = [r.get(key) for r in rows]
            pts = [(s, y) for s, y in zip(steps, ys) if isinstance(y, (int, float)) and y == y]
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
                values += [p[1] for p in pts]
        # Whole steps from 0, and the values' own range from 0: plotext's automatic axes put a single
        # step at 0.50-1.50 and stretched a flat curve, so the points did not read as the loss shown.
        plt.xlim(0, max(steps))
        if len(steps) <= 8:
            plt.xticks(sorted({0, *steps}))
        if values:
            low, high = min(0.0, min(values)), max(values)
            plt.ylim(low, high + (abs(high - low) * 0.1 or 1.0))
        plot.refresh()


def progress_of(run_dir: Path) -> str:
    """`step 12/50` from a run's metrics, for the quit question."""
    rows = RunDir(run_dir).read_metrics()
    if not rows:
        return "starting"
    return f"step {rows[-1]['step']}/{rows[-1].get('total_steps') or '?'}"
