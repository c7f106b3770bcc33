"""The held-out split is by step, seeded and stable (issue #10 item 7), and `shake eval --generate`
replays held-out worker steps, not rows (issue #10 item 8)."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.data import Example, held_out_steps, split


def example(session: str, step: int, row: int) -> Example:
    return Example(f"{session}-{step}-{row}", f"{session}:{step}", [1], [2], None, None)


def sides(train, held):
    return {ex.step_key for ex in train}, {ex.step_key for ex in held}


def test_the_rows_of_a_step_stay_together():
    # 40 steps of 3 rows each: a split by row id puts some step on both sides
    examples = [example("s", step, row) for step in range(40) for row in range(3)]
    train, held = split(examples, 0.3)
    train_steps, held_steps = sides(train, held)
    assert held and train and not train_steps & held_steps
    assert len(train) + len(held) == len(examples)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from("abc"), st.integers(-1, 20), st.integers(1, 4)), min_size=1,
                      max_size=30, unique_by=lambda s: s[:2]),
       fraction=st.floats(0.0, 0.95), seed=st.integers(0, 5), shuffle=st.randoms(use_true_random=False))
def test_split_is_by_step_and_stable(steps, fraction, seed, shuffle):
    examples = [example(s, i, r) for s, i, n in steps for r in range(n)]
    train, held = split(examples, fraction, seed)
    train_steps, held_steps = sides(train, held)
    assert not train_steps & held_steps  # no step on both sides
    assert sorted(e.row_id for e in train + held) == sorted(e.row_id for e in examples)  # nothing lost
    assert train  # something to train on
    if fraction > 0 and len(steps) >= 2:
        assert held  # something to measure
    if fraction == 0:
        assert not held
    shuffled = list(examples)
    shuffle.shuffle(shuffled)
    again_train, again_held = split(shuffled, fraction, seed)
    assert sides(again_train, again_held) == (train_steps, held_steps)  # row order does not matter


def test_the_seed_changes_the_split():
    examples = [example("s", step, 0) for step in range(60)]
    assert sides(*split(examples, 0.5, 0)) != sides(*split(examples, 0.5, 1))
    assert sides(*split(examples, 0.5, 3)) == sides(*split(examples, 0.5, 3))


def test_held_out_steps_are_worker_steps_once_each():
    from engine.store.schema import Agent, ChatMessage, Prompt, Row
    from records import chosen

    def row(rid, step, agent="worker"):
        return Row(row_id=rid, session_id="s", agent=Agent(agent), step_index=step, step="s", cycle=1,
                   prompt=Prompt((ChatMessage("user", f"step {step}"),), "i", "x"),
                   chosen=chosen(f"print({step})\n", agent=Agent(agent)))

    rows = [row("1", 0), row("2", 0), row("3", 0, "lead"), row("4", -1, "planner"), row("5", 1), row("6", 1, "analyzer")]
    examples = [Example(r.row_id, f"s:{r.step_index}", [1], [2], None, None) for r in rows]
    steps = held_out_steps(rows, examples)
    assert [(s.step_key, s.rows, s.chosen_script) for s in steps] == [("s:0", 2, "print(0)\n"), ("s:1", 1, "print(1)\n")]


def test_eval_generate_counts_held_out_steps(shake_env, script_file, tiny_student, tmp_path):
    """A side-chain dataset: steps with several worker rows, and planner/lead/analyzer rows."""
    from engine.agents.analyzer import Classification
    from engine.config import load_config
    from engine.session import Session
    from engine.store import DatasetStore, Snapshot
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer
    from trainer.config import TrainConfig
    from trainer.data import build_examples
    from trainer.evaluate import evaluate
    from trainer.recipe import train
    from trainer.student import load_tokenizer

    (shake_env / "config.toml").write_text(
        '[teachers.a]\nbackend = "embedded"\n[teachers.s1]\nbackend = "embedded"\n'
        '[agents]\nplanner = ["a"]\nlead = ["a"]\nworker = ["a"]\nanalyzer = ["a"]\n'
        '[session]\nswitch_teacher_after = 9\n[student]\nmode = "side-chain"\nteachers = ["s1"]\n'
        '[analyzer]\nscoring = "off"\n')  # scripted teachers' scores are placeholders
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        for i in range(6):
            good = f'print("hello")\nprint({i})\n'
            a = ScriptedTeacher("a", {"planner": ["1. Print the number"], "lead": ["Print it."], "analyzer": ["ACCEPTED"],
                                      "worker": [worker_answer("print(1 / 0)\n"), worker_answer(good)],
                                      "judge": ["A"] * 10})
            s1 = ScriptedTeacher("s1", {"planner": ["x"], "lead": ["y"], "analyzer": ["REDO"]}, backend="student")
            session = Session.start(store, TeacherPool(config, extra={"a": a, "s1": s1}), config, script_file, "print")
            session.plan()
            session.propose()  # an error row, then the proposal
            session.apply_feedback(session.classify("looks right"))
    result = train(TrainConfig(student=tiny_student, max_steps=1, batch_size=2, lora_r=4, eval_fraction=0.5,
                               run_dir=str(tmp_path / "run"), max_length=1024), config.data_dir, progress=False,
                   log=lambda m: None)
    snapshot = Snapshot(result.run_dir / "snapshot")
    examples, _ = build_examples(snapshot, load_tokenizer(tiny_student), TrainConfig(student=tiny_student))
    _, held = split(examples, 0.5)
    by_id = {r.row_id: r for r in snapshot.rows}
    worker_steps = {ex.step_key for ex in held if by_id[ex.row_id].is_worker}
    assert worker_steps and len(held) > len(worker_steps)  # several rows per step, agent rows too
    report = evaluate(result.run_dir, generate=True, max_new_tokens=4)
    assert report["generated"] == report["held_out_steps"] == len(worker_steps)
    assert report["held_out_rows"] == len(held)
    assert 0.0 <= report["pass_rate"] <= 1.0 and math.isfinite(report["loss"])
    assert json.loads((result.run_dir / "eval.json").read_text())["generated"] == len(worker_steps)
