"""One owner for run directories (engine/student/runs.py) and one loader for students."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import pytest

from engine.errors import StudentError
from engine.student import runs
from engine.student.runs import COMPLETE, CheckpointDir, RunDir, list_runs, resolve_run, run_named

ROOT = Path(__file__).resolve().parents[1]
LAYOUT_OWNER = ROOT / "engine" / "student" / "runs.py"


def _layout_names() -> set[str]:
    """Every file and folder name of the run layout, read from the owner itself, so that a file added
    to `RunDir` or `CheckpointDir` is guarded without this list being edited."""
    names = {runs.RUNS, runs.COMPLETE, runs.ADAPTER_CONFIG, runs.ADAPTER_WEIGHTS}
    for kind in (RunDir, CheckpointDir):
        where = Path("/R/run")
        for attr, value in vars(kind).items():
            if isinstance(value, property) and value.fget.__annotations__.get("return") == "Path":
                path = getattr(kind(where), attr)
                if path.parent == where:
                    names.add(path.name)
    return names


RUN_FILE_NAMES = _layout_names()
# Names that a run shares with other directories, spelled where those directories are owned: a Hugging
# Face model directory's config (engine/student/loader.py HF_CONFIG) and an export's adapter folder
# (trainer/export.py writes OUT/adapter, OUT/merged, OUT/student.gguf).
# Strings that equal a run file's name but mean something else there: a PEFT folder's own config, and GGUF's
# `general.type = "adapter"` metadata value.
OTHER_OWNERS = {"engine/student/loader.py": {"config.json"}, "trainer/export.py": {"adapter"},
                "engine/student/gguf_lora.py": {"adapter"}}


def test_the_guard_knows_every_run_file_name():
    assert {"config.json", "run.json", "snapshot", "metrics.jsonl", "checkpoints", "adapter", "DONE", ".stop",
            "eval.json", "scoreboard.json", "COMPLETE", "trainer.pt", "state.json", "adapter_config.json",
            "adapter_model.safetensors", "runs"} <= RUN_FILE_NAMES


def fake_run(root: Path, name: str = "r1", *, steps=(), partial=(), final=False, student="") -> RunDir:
    """A run directory as the trainer leaves it, without training (checkpoint contents are stubs)."""
    run = RunDir(root / "runs" / name)
    run.snapshot.mkdir(parents=True)
    run.config.write_text(json.dumps({"student": student}))
    for step in steps:
        path = run.checkpoint(step)
        (path / "adapter").mkdir(parents=True)
        (path / "state.json").write_text(json.dumps({"step": step, "snapshot_sha256": "x", "total_steps": 9}))
        (path / COMPLETE).write_text("ok\n")
    for step in partial:  # killed after the rename of an older layout, or mid-save
        path = run.checkpoint(step)
        (path / "adapter").mkdir(parents=True)
        (path / "state.json").write_text(json.dumps({"step": step}))
        run.partial_checkpoint(step + 100).mkdir(parents=True)
    if final:
        run.adapter.mkdir()
        (run.adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": student}))
    return run


def test_complete_checkpoints_need_their_marker(tmp_path):
    run = fake_run(tmp_path, steps=(2, 4), partial=(6,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = run.complete_checkpoints()
    assert [c.step for c in found] == [2, 4] and run.latest_checkpoint(warn=False).path == run.checkpoint(4)
    assert sum("partial checkpoint" in str(w.message) for w in caught) == 2  # no marker; .tmp
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.complete_checkpoints(warn=False)
    assert not caught
    assert run.final_adapter() == (run.checkpoint(4) / "adapter", "step-000004")
    assert RunDir(tmp_path / "nothing").complete_checkpoints() == []


def test_the_final_adapter_wins_over_checkpoints(tmp_path):
    run = fake_run(tmp_path, steps=(2,), final=True)
    assert run.final_adapter() == (run.adapter, "final")


def test_runs_are_found_by_name_or_directory(tmp_path):
    first = fake_run(tmp_path, "first")
    fake_run(tmp_path, "second")
    assert resolve_run("first", tmp_path) == first == run_named(tmp_path, "first")
    assert resolve_run(str(first.path), tmp_path / "elsewhere") == first
    assert [r.name for r in list_runs(tmp_path)] == ["first", "second"]
    with pytest.raises(StudentError, match=r"no training run 'third' \(runs in .*: first, second\)"):
        resolve_run("third", tmp_path)
    with pytest.raises(StudentError, match="not a training run"):
        RunDir(tmp_path / "empty").settings()


def test_metrics_stop_at_a_line_being_written(tmp_path):
    run = fake_run(tmp_path)
    run.metrics.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert [m["step"] for m in run.read_metrics()] == [1, 2]


def test_students_resolve_from_runs_adapters_and_models(tmp_path, tiny_student):
    from engine.student.loader import resolve_student

    run = fake_run(tmp_path, steps=(3,), student=tiny_student)
    source = resolve_student(run.path)
    assert source.adapter == run.checkpoint(3) / "adapter" and source.version == "r1@step-000003"
    assert source.base == tiny_student and source.kind == "lora" and source.run == run
    source = resolve_student(fake_run(tmp_path, "done", steps=(3,), final=True, student=tiny_student).path)
    assert source.version == "done@final" and source.adapter.name == "adapter"
    adapter_only = resolve_student(tmp_path / "runs" / "done" / "adapter")
    assert adapter_only.adapter is not None and adapter_only.base == tiny_student
    merged = resolve_student(Path(tiny_student))
    assert merged.adapter is None and merged.kind == "merged"
    with pytest.raises(StudentError, match="has no adapter yet"):
        resolve_student(fake_run(tmp_path, "new").path)
    with pytest.raises(StudentError, match="no student at"):
        resolve_student(tmp_path)


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_only_the_layout_owner_spells_run_file_names():
    spelled = {}
    for folder in ("engine", "trainer", "tui"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == LAYOUT_OWNER:
                continue
            names = {s for s in _string_constants(path)
                     if s in RUN_FILE_NAMES or s.startswith(("step-*", ".step-")) or "checkpoints/" in s}
            names -= OTHER_OWNERS.get(str(path.relative_to(ROOT)), set())
            if names:
                spelled[str(path.relative_to(ROOT))] = names
    assert not spelled, f"run-directory names spelled outside {LAYOUT_OWNER.name}: {spelled}"


async def test_the_app_lists_only_complete_checkpoints(shake_env, tmp_path):
    from engine.config import load_config
    from tui.app import ShakeApp

    config = load_config()
    fake_run(config.data_dir, "run-1", steps=(2,), partial=(3,))
    app = ShakeApp(config=config, check_ollama=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        info = str(app.screen.query_one("#run-info").render())
    assert "Run run-1: stopped" in info and "last checkpoint: step-000002" in info
