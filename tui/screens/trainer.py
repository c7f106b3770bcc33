"""The trainer: start, stop and resume a run in its own process; live loss curves from its metrics file."""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static
from textual_plotext import PlotextPlot

from engine.student.runs import RunDir, list_runs, run_named, runs_root

CURVES = (("loss", "total"), ("kd", "KD"), ("odds_ratio", "OR"), ("nll", "NLL"))


class TrainerScreen(Screen):
    BINDINGS = [
        Binding("t", "start", "Train", id="trainer.start"),
        Binding("S", "stop", "Stop", id="trainer.stop"),
        Binding("R", "resume", "Resume", id="trainer.resume"),
        Binding("v", "evaluate", "Evaluate", id="trainer.eval"),
    ]

    def __init__(self) -> None:
        super().__init__(id="trainer-screen")
        self.proc: subprocess.Popen | None = None
        self.run: RunDir | None = None
        self.shown_steps = -1

    def compose(self) -> ComposeResult:
        with Vertical(id="trainer-body"):
            yield Static("No run yet. t starts one on the whole dataset (the command is `shake train`).", id="run-info",
                         classes="pane-title")
            with Horizontal(id="progress-row"):
                yield ProgressBar(total=1, show_eta=True, id="progress")
                yield Static("", id="speed")
            yield PlotextPlot(id="curves")
            yield Static("", id="eval-results")
        yield Footer()

    @property
    def run_dir(self) -> Path | None:
        return self.run.path if self.run else None

    def on_mount(self) -> None:
        runs = list_runs(self.app.config.data_dir)
        if runs:
            self.run = runs[-1]
        self.set_interval(0.5, self.poll)
        self.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, args: list[str]) -> None:
        if self.running:
            self.app.notify("A run is already going; S stops it", severity="warning")
            return
        self.run.stop.unlink(missing_ok=True)
        log = open(self.run.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "train", *args,
                                      "--stop-file", str(self.run.stop)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.shown_steps = -1
        self.app.notify(f"Training {self.run_dir.name} in the background (log: {log.name})")

    def action_start(self, extra: list[str] | None = None) -> None:
        if self.app.dataset_complete_rows() == 0:
            self.app.notify("The dataset has no accepted rows yet: accept a step in a session first", severity="warning")
            return
        runs_root(self.app.config.data_dir).mkdir(parents=True, exist_ok=True)
        self.run = run_named(self.app.config.data_dir, _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S"))
        self.launch(["--run-dir", str(self.run.path), *(extra or self.app.train_args)])

    def action_stop(self) -> None:
        if not self.running:
            self.app.notify("No run is going", severity="warning")
            return
        self.run.stop.write_text("stop\n")
        self.app.notify("Stopping after the current step (a checkpoint is saved; R resumes)")

    def action_resume(self) -> None:
        if self.run is None or not self.run.started:
            self.app.notify("No run to resume", severity="warning")
            return
        self.launch(["--resume", "--run-dir", str(self.run_dir)])

    def action_evaluate(self) -> None:
        if self.run_dir is None:
            self.app.notify("No run to evaluate", severity="warning")
            return
        if self.running:
            self.app.notify("Wait for the run to finish (or stop it) before evaluating", severity="warning")
            return
        log = open(self.run.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "eval", str(self.run.path)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.app.notify("Evaluating on the held-out rows…")

    def poll(self) -> None:
        if self.run is None:
            return
        rows = self.run.read_metrics()
        state = "running" if self.running else ("finished" if self.run.finished else "stopped")
        if self.proc is not None and self.proc.poll() not in (None, 0):
            state = f"failed (exit {self.proc.returncode}; see {self.run.log})"
        latest = self.run.latest_checkpoint(warn=False)
        info = f"Run {self.run.name}: {state}; last checkpoint: {latest.path.name if latest else 'none'}"
        self.query_one("#run-info", Static).update(Text(info))
        if self.run.eval_report.exists():
            data = json.loads(self.run.eval_report.read_text())
            parts = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in data.items())
            self.query_one("#eval-results", Static).update(Text(f"Held-out: {parts}"))
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
        for key, label in CURVES:
            ys = [r.get(key) for r in rows]
            pts = [(s, y) for s, y in zip(steps, ys) if y is not None]
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
        plot.refresh()
