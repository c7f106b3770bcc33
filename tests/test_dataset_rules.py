"""Issue #10: the ways the student loop wrote wrong data without a word, each pinned by a test.

1. a student distilled into itself (student-first, no KD teacher);
2. `shake data rescore` writing a lead's chosen into worker rows;
3. an overridden analyzer label stored backwards, an unparseable label stored as a chosen;
4. a step accepted at once, with only a student negative, missing its empty-rejected row;
6. soft labels computed under a later cycle's prompt stored as if under the step's; Ollama teachers
   scored exactly through the GGUF blob on this disk.
(5, KD at T != 1, is in test_loss.py; 7 and 8 are in the trainer's tests.)
"""

from __future__ import annotations

import pytest

from engine.agents.analyzer import Classification
from engine.agents.parsing import parse_label
from engine.config import TeacherConfig, load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.store.schema import Prompt, messages_of
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, rows_json, worker_answer

GOOD = 'print("hello")\nprint("bye")\n'
FAILING = "raise SystemExit('nope')\n"


def write_config(shake_env, extra: str = "") -> None:
    (shake_env / "config.toml").write_text(
        '[teachers.a]\nbackend = "embedded"\ncandidates = 1\n[teachers.s1]\nbackend = "embedded"\n'
        '[agents]\nplanner = ["a"]\nlead = ["a"]\nworker = ["a"]\nanalyzer = ["a"]\n[session]\nswitch_teacher_after = 2\n'
        '[analyzer]\nscoring = "off"\n'  # scripted teachers' scores are placeholders
        + extra)


def start(shake_env, script_file, extra, teachers):
    write_config(shake_env, extra)
    config = load_config()
    store = DatasetStore(config.data_dir)
    session = Session.start(store, TeacherPool(config, extra=teachers), config, script_file, "say bye")
    session.plan()
    return session, store


def test_student_first_never_distils_the_student_into_itself(shake_env, script_file):
    """Item 1: the student's failing first answer, then its second, accepted; no KD teacher."""
    student = ScriptedTeacher("s1", {"worker": [worker_answer(FAILING), worker_answer(GOOD)]}, backend="student")
    a = ScriptedTeacher("a")
    session, store = start(shake_env, script_file, '[student]\nmode = "student-first"\nteachers = ["s1"]\n',
                           {"a": a, "s1": student})
    with store:
        proposal = session.propose()
        assert proposal.teacher["name"] == "s1" and proposal.cycle == 2
        session.apply_feedback(Classification("accepted", "user", ""))
        rows = rows_json(store)
    assert rows and all(r["chosen"]["teacher"]["backend"] == "student" for r in rows)
    for row in rows:
        lp = row["chosen"]["logprobs"]
        # the embedded teacher `a` could have scored it (it is no KD teacher but the policy takes the
        # worker's teachers only for user edits); what matters: never the student's own numbers
        assert lp is None or lp["scorer"]["backend"] != "student"
    assert not [call for call in student.scored], "the student was asked to score its own output"


def test_student_first_with_a_kd_teacher_scores_under_the_rows_prompt(shake_env, script_file):
    student = ScriptedTeacher("s1", {"worker": [worker_answer(FAILING), worker_answer(GOOD)]}, backend="student")
    a = ScriptedTeacher("a")
    session, store = start(shake_env, script_file,
                           '[student]\nmode = "student-first"\nteachers = ["s1"]\nkd_teacher = "a"\n',
                           {"a": a, "s1": student})
    with store:
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
        rows = list(store.rows())
    lp = rows[0].chosen.logprobs
    assert lp.scorer.name == "a" and lp.source == "rescored" and lp.prompt_sha == rows[0].prompt.sha


def test_rescore_writes_the_worker_chosen_into_worker_rows_only(shake_env, script_file, capsys):
    """Item 2: in side-chain mode the lead's row is saved before the worker's; rescore must not copy the
    lead's chosen into the worker rows."""
    from engine.rescore import rescore

    a = ScriptedTeacher("a", {"lead": ["Add a print of bye."], "worker": [worker_answer(GOOD)],
                              "judge": ["A", "A", "A"]})
    s1 = ScriptedTeacher("s1", {"planner": ["x"], "lead": ["y"], "worker": ["no code"]}, backend="student")
    session, store = start(shake_env, script_file, '[student]\nmode = "side-chain"\nteachers = ["s1"]\n',
                           {"a": a, "s1": s1})
    with store:
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
        before = {r.row_id: r for r in store.rows()}
        assert {r.agent for r in before.values()} >= {"lead", "worker"}
        scorer = ScriptedTeacher("k")
        report = rescore(store, scorer, top_logprobs=2)
        after = {r.row_id: r for r in store.rows()}
    assert report.scored_steps == 1
    for row_id, row in after.items():
        assert row.chosen.text == before[row_id].chosen.text and row.chosen.agent == row.agent
        if row.is_worker:
            assert row.chosen.script == GOOD and row.chosen.logprobs.scorer.name == "k"
        else:  # agent rows keep their own soft labels
            assert row.chosen.logprobs == before[row_id].chosen.logprobs


@pytest.mark.parametrize("teacher_label, override", [("ACCEPTED", "redo"), ("I am not sure", "redo"),
                                                     ("REDO", "accepted")])
def test_the_analyzer_row_follows_the_users_label(shake_env, script_file, teacher_label, override):
    """Item 3: the stored analyzer preference is the user's final label, never the teacher's overridden
    one, and an unparseable teacher answer never becomes a chosen."""
    a = ScriptedTeacher("a", {"analyzer": [teacher_label], "worker": [worker_answer(GOOD)] * 2, "judge": ["B"] * 9})
    student_label = "EDIT"
    s1 = ScriptedTeacher("s1", {"analyzer": [student_label]}, backend="student")
    session, store = start(shake_env, script_file, '[student]\nmode = "side-chain"\nteachers = ["s1"]\n',
                           {"a": a, "s1": s1})
    with store:
        session.propose()
        guess = session.classify("this is fine I guess")
        session.apply_feedback(Classification(override, "user", guess.feedback, guess.raw))
        rows = [r for r in store.rows() if r.agent == "analyzer"]
    assert len(rows) == 1
    chosen = rows[0].chosen
    assert parse_label(chosen.text) == override
    if parse_label(teacher_label) == override:
        assert chosen.text == teacher_label and chosen.logprobs is not None
    else:
        assert chosen.origin == "user_label" and chosen.logprobs is None and chosen.teacher is None
    assert parse_label(rows[0].rejected.text) != override


def test_an_unconfirmed_unsure_label_stores_no_analyzer_row(shake_env, script_file):
    a = ScriptedTeacher("a", {"analyzer": ["hmm, hard to say"], "worker": [worker_answer(GOOD)] * 2, "judge": ["B"] * 9})
    s1 = ScriptedTeacher("s1", {"analyzer": ["REDO"]}, backend="student")
    session, store = start(shake_env, script_file, '[student]\nmode = "side-chain"\nteachers = ["s1"]\n',
                           {"a": a, "s1": s1})
    with store:
        session.propose()
        guess = session.classify("meh")
        assert guess.source == "default"
        session.apply_feedback(guess)
        assert not [r for r in store.rows() if r.agent == "analyzer"]


def test_a_first_cycle_accept_with_only_a_student_negative_gets_its_empty_rejected_row(shake_env, script_file):
    """Item 4."""
    a = ScriptedTeacher("a", {"worker": [worker_answer(GOOD)], "judge": ["B"] * 9})
    s1 = ScriptedTeacher("s1", {"worker": ["no code here"]}, backend="student")
    session, store = start(shake_env, script_file, '[student]\nmode = "side-chain"\nteachers = ["s1"]\n',
                           {"a": a, "s1": s1})
    with store:
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
        worker = [r for r in rows_json(store) if r["agent"] == "worker"]
    kinds = sorted((r["rejected"] or {}).get("kind", "none") for r in worker)
    assert kinds == ["none", "student"]
    assert all(r["chosen"]["script"] == GOOD for r in worker)


def test_soft_labels_record_the_prompt_they_were_computed_under(shake_env, script_file, tiny_student):
    """Item 6: a teacher that cannot score; the accepted output came from cycle 2, so its own
    log-probabilities belong to cycle 2's instruction, not the row's prompt. Training uses the NLL
    there unless told otherwise."""
    from trainer.config import TrainConfig
    from trainer.data import build_examples
    from trainer.student import load_tokenizer

    o = ScriptedTeacher("a", {"lead": ["Say bye.", "Fix it."], "worker": [worker_answer(FAILING), worker_answer(GOOD)]},
                        backend="ollama")
    o.can_score = False
    session, store = start(shake_env, script_file, "", {"a": o})
    with store:
        proposal = session.propose()
        assert proposal.cycle == 2
        cycle2 = session.state.step.proposal.messages
        session.apply_feedback(Classification("accepted", "user", ""))
        rows = list(store.rows())
        lp = rows[0].chosen.logprobs
        assert lp.source == "generation" and lp.scorer.name == "a"
        assert lp.prompt_sha == Prompt(cycle2).sha != rows[0].prompt.sha
        assert not rows[0].soft_labels_match_prompt
        snapshot_dir = shake_env / "snap"
        store.snapshot(snapshot_dir)
    from engine.store import Snapshot

    tokenizer = load_tokenizer(tiny_student)
    examples, report = build_examples(Snapshot(snapshot_dir), tokenizer, TrainConfig(student=tiny_student))
    assert report.other_prompt == len(rows) and all(ex.kd is None for ex in examples)
    examples, _ = build_examples(Snapshot(snapshot_dir), tokenizer,
                                 TrainConfig(student=tiny_student, kd_other_prompt=True))
    assert any(ex.kd is not None for ex in examples)


@pytest.mark.slow
def test_an_ollama_teacher_scores_exactly_through_its_blob_on_this_disk(tmp_path, monkeypatch):
    """Item 6, beyond: Ollama cannot score, but its GGUF is on this disk; the same weights in llama.cpp."""
    from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path
    from engine.teachers.ollama_backend import OllamaTeacher
    from ollama_layout import add_model

    models = tmp_path / "models"
    add_model(models, ("registry.ollama.ai", "library", "smollm2", "135m"), default_gguf_path())
    monkeypatch.setenv("OLLAMA_MODELS", str(models))
    messages = [{"role": "user", "content": "Say hi."}]
    teacher = OllamaTeacher(TeacherConfig(name="o", backend="ollama", model="smollm2:135m", n_ctx=512))
    assert teacher.can_score
    got = teacher.score(messages, "Hi!", top_logprobs=3)
    want = EmbeddedTeacher(TeacherConfig(name="b", n_ctx=512)).score(messages, "Hi!", top_logprobs=3)
    assert got.token_ids.tolist() == want.token_ids.tolist()
    assert got.logprobs.tolist() == pytest.approx(want.logprobs.tolist(), abs=1e-5)
    remote = OllamaTeacher(TeacherConfig(name="r", backend="ollama", model="smollm2:135m", host="http://10.1.2.3:11434"))
    assert not remote.can_score  # another machine's server: this disk's file may not be its model
    teacher.close()


def test_messages_sha_is_the_prompt_sha():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert Prompt(messages_of(messages)).sha == Prompt(messages_of(list(messages))).sha
    assert Prompt(messages_of(messages)).sha != Prompt(messages_of(messages[:1])).sha
