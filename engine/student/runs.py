"""Where a training run keeps its files: the one owner of the run-directory layout.

    DATA/runs/NAME/
        config.json                   the run's settings (the trainer's TrainConfig), written once
        run.json                      the snapshot's hash and row count, the precision it trains in
        snapshot/                     the frozen dataset the run trains on
        metrics.jsonl                 one JSON object per optimizer step
        phase                         what the trainer does before its first step (one line, in words)
        checkpoints/step-NNNNNN/      adapter/, trainer.pt, state.json and, written last, COMPLETE
        checkpoints/.step-NNNNNN.tmp/ a save in progress (renamed to step-NNNNNN/ once COMPLETE)
        adapter/                      the final LoRA adapter
        DONE                          the final metrics; present once the run has finished
        .stop                         asks a running trainer to stop after its current step
        eval.json                     the last `shake eval` report
    DATA/runs/NAME.log                the output of the app's training process

Every other module asks a `RunDir` for these paths and never spells a name itself. A checkpoint
counts only with its `COMPLETE` marker: a kill mid-save leaves a directory without it, which is
skipped with a warning everywhere (resume, the student backend, the app's checkpoint list).

Why in `engine`: the trainer writes runs, the engine's student backend reads them (a trained run is a
teacher) and the app lists them. The engine imports neither the trainer nor the app, and both import
the engine, so the layout lives here, in the lowest layer, and every reader shares it without an
import cycle. Nothing here imports torch: listing runs stays cheap for the app.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StudentError

RUNS = "runs"
COMPLETE = "COMPLETE"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class CheckpointDir:
    """The files of one checkpoint directory, complete or being written (`RunDir.partial_checkpoint`)."""

    path: Path

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def trainer_state(self) -> Path:
        """Optimizer, scheduler, grad scaler and RNG states (torch.save)."""
        return self.path / "trainer.pt"

    @property
    def state(self) -> Path:
        """The step, the snapshot's hash and the run's total steps (JSON)."""
        return self.path / "state.json"

    @property
    def complete(self) -> Path:
        """Written last: without it the checkpoint does not count."""
        return self.path / COMPLETE


@dataclass(frozen=True)
class CheckpointInfo:
    """A complete checkpoint: its directory and the step it was saved after."""

    path: Path
    step: int
    snapshot_sha256: str
    total_steps: int

    @property
    def adapter(self) -> Path:
        return CheckpointDir(self.path).adapter

    @property
    def trainer_state(self) -> Path:
        return CheckpointDir(self.path).trainer_state


@dataclass(frozen=True)
class RunDir:
    """One training run's directory and every file in it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def run_info(self) -> Path:
        return self.path / "run.json"

    @property
    def snapshot(self) -> Path:
        return self.path / "snapshot"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def phase(self) -> Path:
        return self.path / "phase"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def done(self) -> Path:
        return self.path / "DONE"

    @property
    def stop(self) -> Path:
        return self.path / ".stop"

    @property
    def eval_report(self) -> Path:
        return self.path / "eval.json"

    @property
    def scoreboard(self) -> Path:
        return self.path / "scoreboard.json"

    @property
    def log(self) -> Path:
        return self.path.parent / f"{self.path.name}.log"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:06d}"

    def partial_checkpoint(self, step: int) -> Path:
        return self.checkpoints / f".step-{step:06d}.tmp"

    # -- state ---------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """A run was started here (its settings are written)."""
        return self.config.exists()

    @property
    def finished(self) -> bool:
        return self.done.exists()

    def settings(self) -> dict:
        """The run's saved settings (the trainer turns them back into its TrainConfig)."""
        if not self.started:
            raise StudentError(f"{self.path} is not a training run (it has no {self.config.name})")
        return json.loads(self.config.read_text())

    @property
    def student(self) -> str:
        """The student spec the run trained: "" (the bundled GGUF), a .gguf file or a model directory."""
        return str(self.settings().get("student", ""))

    def complete_checkpoints(self, *, warn: bool = True) -> list[CheckpointInfo]:
        """Checkpoints with their COMPLETE marker, oldest first; partial ones are skipped (with a warning
        unless `warn` is off: the app polls and shows only complete ones)."""
        found: list[CheckpointInfo] = []
        if not self.checkpoints.is_dir():
            return found
        for path in sorted(self.checkpoints.iterdir()):
            if path.name.startswith(".step-") and path.name.endswith(".tmp"):
                if warn:
                    warnings.warn(f"skipping the partial checkpoint {path} (the save did not finish)", stacklevel=2)
                continue
            if not path.name.startswith("step-"):
                continue
            if not CheckpointDir(path).complete.exists():
                if warn:
                    warnings.warn(f"skipping the partial checkpoint {path} (no {COMPLETE} marker)", stacklevel=2)
                continue
            state = json.loads(CheckpointDir(path).state.read_text())
            found.append(CheckpointInfo(path, int(state["step"]), str(state.get("snapshot_sha256", "")),
                                        int(state.get("total_steps", 0))))
        return sorted(found, key=lambda c: c.step)

    def latest_checkpoint(self, *, warn: bool = True) -> CheckpointInfo | None:
        found = self.complete_checkpoints(warn=warn)
        return found[-1] if found else None

    def final_adapter(self) -> tuple[Path, str] | None:
        """The newest usable adapter and its label: the final one, else the newest complete checkpoint's."""
        if (self.adapter / ADAPTER_CONFIG).exists():
            return self.adapter, "final"
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        return latest.adapter, latest.path.name

    def set_phase(self, what: str) -> None:
        """Say what the run does now (loading the model, tokenizing...): minutes can pass before the
        first metrics line, and a bar at 0 % says nothing about them."""
        from engine.store.atomic import atomic_write_text

        try:
            atomic_write_text(self.phase, what + "\n")
        except OSError:
            pass  # the phase is for the eye; the run must not fail over it

    def read_phase(self) -> str:
        try:
            return self.phase.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return ""

    def read_metrics(self) -> list[dict]:
        """The metrics lines written so far; a line being written right now ends the list."""
        if not self.metrics.exists():
            return []
        rows = []
        for line in self.metrics.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows


def runs_root(data_dir: Path) -> Path:
    return Path(data_dir) / RUNS


def run_named(data_dir: Path, name: str) -> RunDir:
    return RunDir(runs_root(data_dir) / name)


def list_runs(data_dir: Path) -> list[RunDir]:
    """Every run directory under DATA/runs, oldest first (by modification time)."""
    root = runs_root(data_dir)
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)]


def resolve_run(run: str, data_dir: Path) -> RunDir:
    """A run given by name (under DATA/runs) or by directory."""
    path = Path(run).expanduser()
    if path.is_dir():
        return RunDir(path)
    candidate = run_named(data_dir, run)
    if candidate.path.is_dir():
        return candidate
    names = ", ".join(r.name for r in list_runs(data_dir)) or "none"
    raise StudentError(f"no training run '{run}' (runs in {runs_root(data_dir)}: {names})")
