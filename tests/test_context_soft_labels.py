"""Issue #22: both soft-label sources of a chosen, and training on the teachers' answers only.

A step's prompt is its first cycle's; an answer accepted in a later cycle was produced under a richer
context (the run's error, the user's feedback). The chosen keeps the labels under the row's prompt
(`logprobs`, re-scored) and the generator's own under the context that produced it (`context_logprobs`);
`shake train --soft-labels context` distils the second into the bare first prompt.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from engine.agents.analyzer import Classification
from engine.config import load_config
from engine.session import Session
from engine.session.soft_labels import SoftLabels
from engine.store import DatasetStore, Snapshot
from engine.store.check import check_data
from engine.logprobs import TokenLogprobs
from engine.session.calls import logprob_record
from engine.store.schema import LogprobRecord, LogprobSource, Output, Prompt, messages_of
from engine.teachers.base import ModelIdentity
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, fake_tokens, worker_answer

GOOD = 'print("hello")\nprint("bye")\n'
FAILING = "raise SystemExit('nope')\n"


def accepted_after_an_error(config, script_file):
    """One step: cycle 1's script fails, cycle 2's is accepted; a second step accepted at once."""
    a = ScriptedTeacher("a", {"planner": ["1. Say bye\n2. Say it again"],
                              "lead": ["Say bye.", "Fix the error.", "Say it again."],
                              "worker": [worker_answer(FAILING), worker_answer(GOOD),
                                         worker_answer(GOOD + 'print("bye")\n')]})
    pool = TeacherPool(config, extra={"a": a, "b": ScriptedTeacher("b")})
    store = DatasetStore(config.data_dir)
    session = Session.start(store, pool, config, script_file, "say bye, then say it again")
    session.plan()
    proposal = session.propose()
    assert proposal.cycle == 2
    cycle2 = Prompt(session.state.step.proposal.messages)
    session.apply_feedback(Classification("accepted", "user", ""))
    session.propose()
    session.apply_feedback(Classification("accepted", "user", ""))
    return store, cycle2


def test_a_later_cycles_chosen_keeps_both_sources(config, script_file):
    store, cycle2 = accepted_after_an_error(config, script_file)
    with store:
        rows = list(store.rows())
        first = [r for r in rows if r.step_index == 0]
        chosen = first[0].chosen
        assert chosen.logprobs.source == LogprobSource.RESCORED and chosen.logprobs.prompt_sha == first[0].prompt.sha
        context = chosen.context_logprobs
        assert context is not None and context.source == LogprobSource.GENERATION
        assert context.prompt_sha == cycle2.sha != first[0].prompt.sha and context.scorer.name == "a"
        assert store.get_logprobs(context.blob).spells(chosen.text)
        # every worker row of the step shares the chosen, both records included
        assert all(r.chosen == chosen for r in first)
        # accepted on its first cycle: the context is the row's prompt, nothing more to keep
        second = [r for r in rows if r.step_index == 1]
        assert second[0].chosen.logprobs.prompt_sha == second[0].prompt.sha
        assert second[0].chosen.context_logprobs is None


def test_a_students_own_labels_are_never_a_context_source():
    prompt = Prompt(messages_of([{"role": "user", "content": "x"}]))
    other = Prompt(messages_of([{"role": "user", "content": "y"}]))

    record = LogprobRecord("0" * 64, 1, 1, False, LogprobSource.GENERATION, ModelIdentity("s", "student", "m"),
                           other.sha)
    by = {b: Output(text="t", teacher=ModelIdentity("t", b, "m"), cycle=2, created_at="") for b in ("student", "embedded")}
    assert SoftLabels.for_context(prompt, by["student"], record) is None
    assert SoftLabels.for_context(prompt, by["embedded"], record) is record
    assert SoftLabels.for_context(other, by["embedded"], record) is None  # the row's own prompt: not another context
    user = Output(text="t", teacher=None, cycle=2, created_at="")
    assert SoftLabels.for_context(prompt, user, record) is None


def test_context_labels_that_spell_another_text_are_refused_alone(config, script_file):
    store, _ = accepted_after_an_error(config, script_file)
    with store:
        row = next(r for r in store.rows() if r.step_index == 0)
        lp = TokenLogprobs.from_tokens(fake_tokens("some other text entirely"))
        wrong = logprob_record(store, lp, source=LogprobSource.GENERATION, scorer=row.chosen.teacher,
                               prompt_sha="f" * 64)
        store.commit(row.session_id, chosen_for_step=(0, replace(row.chosen, context_logprobs=wrong)))
        again = next(r for r in store.rows() if r.step_index == 0)
        assert again.chosen.context_logprobs is None
        assert again.chosen.logprobs == row.chosen.logprobs and not again.chosen.soft_labels_refused


def test_data_check_names_a_missing_context_blob(config, script_file):
    store, _ = accepted_after_an_error(config, script_file)
    with store:
        row = next(r for r in store.rows() if r.step_index == 0)
        store.blobs.path_for(row.chosen.context_logprobs.blob).unlink()
    problems = check_data(config.data_dir)
    assert any("context log-probability blob" in p.message and "missing" in p.message for p in problems), problems


def snapshot_of(config, script_file, tmp_path):
    store, _ = accepted_after_an_error(config, script_file)
    with store:
        store.snapshot(tmp_path / "snap")
    return Snapshot(tmp_path / "snap")


def test_the_trainer_picks_the_source_by_one_setting(config, script_file, tmp_path, tiny_student):
    from trainer.config import TrainConfig
    from trainer.data import build_examples
    from trainer.student import load_tokenizer

    snapshot = snapshot_of(config, script_file, tmp_path)
    tokenizer = load_tokenizer(tiny_student)
    step0 = [r for r in snapshot.rows if r.step_index == 0]
    # the snapshot carries the context blob with the rows
    assert snapshot.logprobs(step0[0], context=True).spells(step0[0].chosen.text)
    _, by_prompt = build_examples(snapshot, tokenizer, TrainConfig(student=tiny_student))
    _, by_context = build_examples(snapshot, tokenizer, TrainConfig(student=tiny_student, soft_labels="context"))
    assert by_prompt.context_labels == 0 and by_context.context_labels == len(step0)
    assert by_prompt.with_logprobs == by_context.with_logprobs == len(snapshot.rows)
    examples, _ = build_examples(snapshot, tokenizer, TrainConfig(student=tiny_student, soft_labels="context"))
    prompt_examples, _ = build_examples(snapshot, tokenizer, TrainConfig(student=tiny_student))
    ex_c = next(e for e in examples if e.row_id == step0[0].row_id)
    ex_p = next(e for e in prompt_examples if e.row_id == step0[0].row_id)
    assert ex_c.prompt_ids == ex_p.prompt_ids  # the bare first prompt either way
    assert not (ex_c.kd.logps == ex_p.kd.logps).all()  # the generation's -0.25 against the re-scoring's -0.5


def test_model_chosen_only_leaves_the_users_fixes_out(config, script_file, tmp_path, tiny_student):
    from trainer.config import TrainConfig
    from trainer.data import build_examples
    from trainer.errors import TrainError
    from trainer.student import load_tokenizer

    pool = TeacherPool(config, extra={"a": ScriptedTeacher("a", {"worker": [worker_answer(GOOD)]}),
                                      "b": ScriptedTeacher("b")})
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, pool, config, script_file, "say bye")
        session.plan()
        session.propose()
        session.accept_user_edit('print("hello")\nprint("bye, by hand")\n')
        store.snapshot(tmp_path / "snap")
    snapshot = Snapshot(tmp_path / "snap")
    tokenizer = load_tokenizer(tiny_student)
    assert snapshot.rows and all(r.chosen.origin == "user_edit" for r in snapshot.rows)
    examples, report = build_examples(snapshot, tokenizer, TrainConfig(student=tiny_student, no_kd=True))
    assert len(examples) == len(snapshot.rows) and report.user_chosen_left_out == 0
    with pytest.raises(TrainError, match="--model-chosen-only leaves out"):
        build_examples(snapshot, tokenizer, TrainConfig(student=tiny_student, no_kd=True, model_chosen_only=True))


def test_a_bad_soft_label_source_is_one_line_and_exit_2(shake_env):
    out = subprocess.run([sys.executable, "-m", "tui.cli", "train", "--soft-labels", "teacher"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "--soft-labels is prompt or context" in out.stderr and "Traceback" not in out.stderr
