"""`shake data export`: JSONL on standard output, Parquet refused there, and the JSONL file as TRL reads it."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from engine.agents.analyzer import Classification
from engine.config import load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer
from tui.cli import main

TASKS = [("x = 2\nprint(x)\n", "print the square", "x = 2\nprint(x)\nprint(x * x)\n"),
         ('print("hello")\n', "say goodbye too", 'print("hello")\nprint("goodbye")\n')]


@pytest.fixture
def paired_rows(shake_env):
    """Four paired rows the way sessions write them: per task an error and a Redo, then Accepted."""
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        for i, (script, request, good) in enumerate(TASKS):
            path = shake_env / f"task{i}.py"
            path.write_text(script)
            teacher = ScriptedTeacher("a", {"planner": ["1. Make the change"], "worker": [
                worker_answer(script + "raise SystemExit('not yet')\n"), worker_answer(script + "print('no')\n"),
                worker_answer(good)]})
            session = Session.start(store, TeacherPool(config, extra={"a": teacher, "b": teacher}), config, path, request)
            session.plan(max_steps=1)
            session.propose()
            session.apply_feedback(Classification("redo", "user", "not that"))
            session.propose()
            session.apply_feedback(Classification("accepted", "user", ""))
        assert store.stats().with_rejected == 4
    return shake_env


def test_export_without_out_writes_jsonl_to_stdout(paired_rows, capsys):
    assert main(["data", "export", "--out", str(paired_rows / "rows.jsonl")]) == 0
    capsys.readouterr()
    assert main(["data", "export"]) == 0
    out, err = capsys.readouterr()
    assert out == (paired_rows / "rows.jsonl").read_text() and err == ""  # the data and nothing else
    assert [json.loads(line)["rejected_kind"] for line in out.splitlines()] == ["error", "redo"] * 2


def test_parquet_to_stdout_is_refused_in_one_line(paired_rows, capsys):
    assert main(["data", "export", "--format", "parquet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "give --out FILE" in err


def test_a_closed_pipe_ends_the_export_quietly(paired_rows):
    """`shake data export | head -1`: the reader leaves early; no traceback, exit 0."""
    shell = f"{sys.executable} -m tui.cli data export | head -c 10 > /dev/null; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "0" and "Traceback" not in done.stderr and "Broken pipe" not in done.stderr


def test_exported_jsonl_trains_a_step_in_trl_as_it_is(paired_rows, tiny_student, capsys):
    """The file `shake data export --paired-only` writes, loaded by `datasets` and trained on by TRL's
    ORPOTrainer with nothing renamed, dropped or converted."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    path = paired_rows / "pairs.jsonl"
    assert main(["data", "export", "--paired-only", "--out", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote 4 rows to {path} (jsonl)\n"
    dataset = load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == 4 and {"prompt", "chosen", "rejected", "chosen_logprobs"} <= set(dataset.column_names)
    model = AutoModelForCausalLM.from_pretrained(tiny_student)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = ORPOConfig(output_dir=str(paired_rows / "trl"), per_device_train_batch_size=4, max_steps=1, learning_rate=1e-3,
                      max_length=1024, report_to=[], save_strategy="no", use_cpu=True, bf16=False, logging_steps=1,
                      disable_tqdm=True, dataloader_num_workers=0)
    trainer = ORPOTrainer(model=model, args=args, train_dataset=dataset,
                          processing_class=AutoTokenizer.from_pretrained(tiny_student))
    trainer.train()
    assert trainer.state.global_step == 1
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and math.isfinite(logged[0]["loss"])
    assert any(not (p == before[n]).all() for n, p in model.named_parameters())  # the step changed the weights
