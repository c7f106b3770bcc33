"""`shake eval --scoreboard`: held-out steps replayed with the student, the base model and the teacher."""

from __future__ import annotations

import json

from engine.agents import worker
from engine.config import RunnerConfig
from engine.teachers.base import ModelIdentity
from helpers import ScriptedTeacher, worker_answer
from trainer.data import HeldOutStep
from trainer.scoreboard import BASE, STUDENT, TEACHER, Scoreboard, build_scoreboard


def step(key: str, chosen: str, teacher: str = "a") -> HeldOutStep:
    return HeldOutStep(key, worker.worker_messages(f"do {key}", "print(0)\n"), f"do {key}", "print(0)\n",
                       worker_answer(chosen), chosen, ModelIdentity(teacher, "embedded", "m"), 2)


def test_pass_is_same_output_or_the_judges_preference(tmp_path):
    steps = [step("s:0", 'print("hi")\n'), step("s:1", 'print("bye")\n', teacher="gone")]
    judge = ScriptedTeacher("a", {"judge": ["A", "B"], "worker": ["no code here", worker_answer('print("bye!")\n')]})
    answers = {
        STUDENT: ("run", lambda m: worker_answer('print("hi")\n' if "s:0" in m[-1]["content"] else 'print("bye")\n')),
        BASE: ("base", lambda m: worker_answer('print("hello")\n' if "s:0" in m[-1]["content"] else 'print("ciao")\n')),
    }
    board = build_scoreboard("run", steps, answers, lambda ident: judge if ident.name == "a" else None,
                             lambda ident: judge, RunnerConfig())
    student, base, teacher = (board.score(c) for c in (STUDENT, BASE, TEACHER))
    assert (student.passed, student.agreed, student.steps) == (2, 2, 2)  # same output on both steps
    assert (base.passed, base.judge_wins, base.ran) == (1, 1, 2)  # the judge said A, then B
    assert (teacher.steps, teacher.passed, teacher.well_formed, teacher.unavailable) == (1, 0, 0, 1)
    assert board.reference_runs == 2 and student.pass_rate == 1.0 and base.pass_rate == 0.5
    path = board.save(tmp_path)
    assert Scoreboard.load(tmp_path) == board
    assert json.loads(path.read_text())["contestants"][0]["pass_rate"] == 1.0
    assert any("judge preferred 1" in line for line in board.lines())


def test_a_script_that_fails_or_an_accepted_script_that_no_longer_runs(tmp_path):
    steps = [step("s:0", "import sys\nsys.exit(3)\n")]
    answers = {STUDENT: ("run", lambda m: worker_answer("print(1)\n")),
               BASE: ("base", lambda m: worker_answer("raise ValueError('x')\n"))}
    board = build_scoreboard("run", steps, answers, lambda i: None, lambda i: None, RunnerConfig())
    assert board.reference_runs == 0
    assert board.score(STUDENT).passed == 0 and board.score(STUDENT).ran == 1
    assert board.score(BASE).ran == 0 and board.score(TEACHER).steps == 0


def test_shake_eval_scoreboard_on_a_run(run_copy, shake_env, capsys):
    from tui.cli import main

    (shake_env / "config.toml").write_text('[teachers.b]\nbackend = "embedded"\n[agents]\nplanner = ["b"]\n'
                                           'lead = ["b"]\nworker = ["b"]\nanalyzer = ["b"]\n')
    assert main(["eval", str(run_copy), "--scoreboard", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    board = Scoreboard.load(run_copy)
    assert board is not None and board.held_out_steps >= 1 and "held-out steps" in out
    assert board.score(STUDENT).steps == board.score(BASE).steps == board.held_out_steps
    assert board.score(TEACHER).unavailable == board.held_out_steps  # teacher "a" is not in this config
    assert main(["eval", str(run_copy), "--scoreboard", "--max-steps", "-1"]) == 2
