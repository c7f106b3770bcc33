"""Output hygiene: the libraries' warnings, log records and progress bars stay off the terminal (they go to
DATA/shake.log) unless `--verbose`; shake's own lines are the same either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.logs import QUIET_ENVIRONMENT

SHAKE = str(Path(sys.executable).with_name("shake"))


def shake(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT}
    env.update(SHAKE_CONFIG=str(tmp_path / "config.toml"), SHAKE_DATA=str(tmp_path / "data"))
    return subprocess.run([SHAKE, *args], env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture
def adapter_teacher(tmp_path, tiny_student):
    """A LoRA adapter as a student teacher: `shake teachers` loads transformers, peft and bitsandbytes."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_student),
                           LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "config.toml").write_text(f'[teachers.stud]\nbackend = "student"\nmodel = "{tmp_path / "adapter"}"\n')
    return tmp_path


def test_teachers_prints_its_table_and_nothing_else(adapter_teacher):
    loud = shake(adapter_teacher, "--verbose", "teachers")
    quiet = shake(adapter_teacher, "teachers")
    assert loud.returncode == quiet.returncode == 0
    assert quiet.stdout == loud.stdout and quiet.stdout.count("\n") == 1 and quiet.stdout.rstrip().endswith("ok")
    assert loud.stderr.strip(), "--verbose shows the libraries' output (at least transformers' loading bar)"
    assert quiet.stderr == ""
    log = adapter_teacher / "data" / "shake.log"
    # what the libraries logged or warned goes to the log instead (the bars are switched off)
    records = [line for line in loud.stderr.splitlines() if "Warning" in line or "kernels-community" in line]
    for record in records:
        key = record.split(": ", 1)[-1][:60]
        assert key in log.read_text(), key


def test_a_hugging_face_export_draws_no_progress_bar(shake_env, script_file):
    from engine.agents.analyzer import Classification
    from engine.config import load_config
    from engine.session import Session
    from engine.store import DatasetStore
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer

    config = load_config()
    teacher = ScriptedTeacher("a", {"worker": [worker_answer('print("bye")\n')]})
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": teacher, "b": teacher}), config, script_file, "x")
        session.plan(max_steps=1)
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
    loud = shake(shake_env, "data", "export", "--hf", str(shake_env / "loud"), "--verbose")
    quiet = shake(shake_env, "data", "export", "--hf", str(shake_env / "quiet"))
    assert "Saving the dataset" in loud.stderr
    assert quiet.stderr == "" and quiet.stdout == f"wrote 1 rows to {shake_env / 'quiet'} (Hugging Face datasets)\n"
