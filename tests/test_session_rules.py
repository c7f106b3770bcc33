"""The session state machine against the dataset rules (shared/README.md §1), with scripted teachers."""

from __future__ import annotations

import threading

import pytest

from engine.agents.analyzer import Classification
from engine.errors import AttemptsExhausted, GenerationCancelled, InputError, SessionError
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer, rows_json

ORIGINAL = 'print("hello")\n'
FAILING = 'raise ValueError("boom")\n'
A = 'print("hello")\nprint("bye")\n'
B = 'print("hello")\nprint("goodbye")\n'
C = 'print("hello")\nprint("goodbye!")\n'
D = 'print("hello")\nprint("goodbye!")\nprint(3)\n'


def make_session(store, config, script_file, a_answers, b_answers=None):
    a = ScriptedTeacher("a", a_answers)
    b = ScriptedTeacher("b", b_answers or {})
    pool = TeacherPool(config, extra={"a": a, "b": b})
    session = Session.start(store, pool, config, script_file, "say goodbye, then count")
    return session, a, b


def by_step(store, session):
    rows = rows_json(store, session.id)
    return {i: [r for r in rows if r["step_index"] == i] for i in {r["step_index"] for r in rows}}


def test_every_row_rule_in_one_session(store, config, script_file):
    config.session.switch_teacher_after = 5  # this test is about rows; switching has its own test
    session, a, _ = make_session(
        store,
        config,
        script_file,
        {
            "planner": ["1. Add a goodbye line\n2. Print a count"],
            "lead": ["Add a goodbye line.", "Fix the ValueError.", "Try again, say goodbye.", "Add an exclamation mark.", "Print 3."],
            "worker": [worker_answer(FAILING), worker_answer(A), worker_answer(B), worker_answer(C), worker_answer(D)],
        },
    )
    assert session.plan() == ["Add a goodbye line", "Print a count"]

    # cycle 1 fails when run -> error row; cycle 2 runs -> proposal
    proposal = session.propose()
    assert proposal.script == A and proposal.run.ok and proposal.cycle == 2
    rows = rows_json(store, session.id)
    assert [r["rejected"]["kind"] for r in rows] == ["error"]
    assert rows[0]["rejected"]["script"] == FAILING and "boom" in rows[0]["rejected"]["error"]
    assert rows[0]["chosen"] is None
    # the error went back to the lead
    lead_calls = [m for agent, m in a.calls if agent == "lead"]
    assert "boom" in lead_calls[1][1]["content"]

    # Redo -> redo row, current script unchanged
    session.apply_feedback(Classification("redo", "user", "wrong line"))
    assert session.current_script == ORIGINAL
    proposal = session.propose()
    assert proposal.script == B
    lead_calls = [m for agent, m in a.calls if agent == "lead"]
    assert "rejected by the user" in lead_calls[2][1]["content"] and "wrong line" in lead_calls[2][1]["content"]

    # Further edit -> further_edit row, current script becomes B
    session.apply_feedback(Classification("further_edit", "user", "add an exclamation mark"))
    assert session.current_script == B
    proposal = session.propose()
    assert proposal.script == C and proposal.base_script == B

    # Accepted -> chosen in every row of the step
    session.apply_feedback(Classification("accepted", "user", "good"))
    assert session.current_script == C
    steps = by_step(store, session)
    assert [r["rejected"]["kind"] for r in steps[0]] == ["error", "redo", "further_edit"]
    for row in steps[0]:
        assert row["chosen"]["script"] == C
        assert row["chosen"]["text"] == worker_answer(C)
        assert row["chosen"]["reasoning"] == "I change what the instruction asks."
        # the prompt is the first cycle's instruction with the script of that moment
        assert row["prompt"]["instruction"] == "Add a goodbye line."
        assert row["prompt"]["script"] == ORIGINAL
        assert "Add a goodbye line." in row["prompt"]["messages"][1]["content"]
    # the accepted output came from cycle 5's prompt, so the teacher re-scored it under the row's prompt
    lp = steps[0][0]["chosen"]["logprobs"]
    assert lp["source"] == "rescored" and lp["n_tokens"] > 0
    assert a.scored and a.scored[-1][0] == steps[0][0]["prompt"]["messages"]
    assert len(store.get_logprobs(lp["blob"])) == lp["n_tokens"]

    # step 2 accepted on its first cycle -> one row with an empty rejected
    proposal = session.propose()
    assert proposal.script == D and proposal.base_script == C
    session.apply_feedback(Classification("accepted", "explicit", ""))
    steps = by_step(store, session)
    assert len(steps[1]) == 1
    assert steps[1][0]["rejected"] is None and steps[1][0]["chosen"]["script"] == D
    assert steps[1][0]["chosen"]["logprobs"]["source"] == "generation"
    assert session.status == "done" and session.current_script == D
    for row in rows_json(store, session.id):
        prov = row["chosen"]
        assert prov["teacher"]["name"] == "a" and prov["sampling"]["temperature"] == config.sampling["worker"].temperature
        assert row["session_id"] == session.id and row["created_at"]
    with pytest.raises(SessionError):
        session.propose()


def test_malformed_output_is_a_failed_attempt_without_a_row(store, config, script_file):
    config.session.switch_teacher_after = 5
    session, a, _ = make_session(
        store, config, script_file,
        {"worker": ["Sure! I would print goodbye.", "```python\nprint(1)\n```\n```python\nprint(2)\n```", worker_answer(A)]},
    )
    session.plan()
    proposal = session.propose()
    assert proposal.script == A
    assert rows_json(store, session.id) == []
    lead_calls = [m for agent, m in a.calls if agent == "lead"]
    assert "could not be used" in lead_calls[1][1]["content"]


def test_worker_switches_teacher_after_n_failures(store, config, script_file):
    session, a, b = make_session(
        store, config, script_file,
        {"worker": [worker_answer(FAILING), worker_answer(FAILING)]},
        {"worker": [worker_answer(A)]},
    )
    session.plan()
    events = []
    proposal = session.propose(emit=events.append)
    assert proposal.teacher["name"] == "b"
    assert any(e.kind == "switch" and "'b'" in e.text for e in events)
    session.apply_feedback(Classification("accepted", "user", ""))
    rows = rows_json(store, session.id)
    assert [r["rejected"]["teacher"]["name"] for r in rows] == ["a", "a"]
    assert all(r["chosen"]["teacher"]["name"] == "b" for r in rows)


def test_all_teachers_failing_stalls_and_resume_retries(store, config, script_file):
    session, a, b = make_session(
        store, config, script_file,
        {"worker": [worker_answer(FAILING)] * 2 + [worker_answer(A)]},
        {"worker": [worker_answer(FAILING)] * 2},
    )
    session.plan()
    with pytest.raises(AttemptsExhausted, match="resume"):
        session.propose()
    assert session.status == "stalled"
    assert len(rows_json(store, session.id)) == 4
    resumed = Session.resume(store, session.pool, config, session.id)
    assert resumed.propose().script == A


def test_a_stalled_step_takes_the_users_own_script(store, config, script_file):
    """The teachers failed every attempt: the user writes the step themselves. Their script is the
    chosen (origin user_edit, hard labels: no teacher wrote it) of every failed attempt's row, and
    nothing is stored when it does not parse."""
    from engine.store.check import check_data

    session, a, b = make_session(store, config, script_file, {"worker": [worker_answer(FAILING)] * 2},
                                 {"worker": ["no code", worker_answer(FAILING)]})
    session.plan()
    with pytest.raises(AttemptsExhausted):
        session.propose()
    assert session.status == "stalled"
    with pytest.raises(InputError, match="does not parse"):
        session.accept_user_edit("def broken(:\n")
    failed = [r.row_id for r in store.rows(session.id)]
    assert session.status == "stalled" and len(failed) >= 2 and all(r.chosen is None for r in store.rows(session.id))
    resumed = Session.resume(store, session.pool, config, session.id)
    resumed.accept_user_edit(A)
    assert resumed.status == "done" and resumed.current_script == A and resumed.stall is None
    rows = list(store.rows(session.id))
    assert [r.row_id for r in rows] == failed and all(r.rejected is not None for r in rows)
    assert all(r.chosen.script == A and r.chosen.origin == "user_edit" and r.chosen.teacher is None for r in rows)
    assert check_data(config.data_dir) == []


def test_pause_and_resume_from_the_store(config, script_file):
    a = ScriptedTeacher("a", {"worker": [worker_answer(A), worker_answer(B)]})
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": a}), config, script_file, "say goodbye")
        session.plan()
        first = session.propose()
        session_id = session.id
    # a new process: everything comes back from disk
    with DatasetStore(config.data_dir) as store:
        resumed = Session.resume(store, TeacherPool(config, extra={"a": a}), config, session_id)
        assert resumed.status == "review"
        again = resumed.propose()
        assert again.script == first.script and again.cycle == first.cycle
        resumed.apply_feedback(Classification("further_edit", "user", "more"))
        session_id = resumed.id
    with DatasetStore(config.data_dir) as store:
        resumed = Session.resume(store, TeacherPool(config, extra={"a": a}), config, session_id)
        assert resumed.current_script == A and resumed.status == "working"
        assert resumed.propose().script == B


def test_analyzer_labels_explicit_prefixes_and_safe_default(store, config, script_file):
    session, a, _ = make_session(
        store, config, script_file, {"analyzer": ["ACCEPTED", "I think maybe", "REDO or EDIT", " redo."]}
    )
    session.plan()
    assert session.classify("looks great").label == "accepted"
    unsure = session.classify("hmm")
    assert unsure.label == "further_edit" and unsure.source == "default"
    assert session.classify("whatever").label == "further_edit"
    assert session.classify("start over").label == "redo"
    calls = len([1 for agent, _ in a.calls if agent == "analyzer"])
    explicit = session.classify("accept: all good")
    assert explicit.label == "accepted" and explicit.source == "explicit" and explicit.feedback == "all good"
    assert session.classify("redo: no").label == "redo"
    assert session.classify("Edit: rename x").label == "further_edit"
    assert len([1 for agent, _ in a.calls if agent == "analyzer"]) == calls  # the model was not asked
    with pytest.raises(InputError):
        session.classify("   ")


def test_user_override_of_the_analyzer_label_is_what_is_stored(store, config, script_file):
    session, a, _ = make_session(store, config, script_file, {"analyzer": ["ACCEPTED"], "worker": [worker_answer(A)]})
    session.plan()
    session.propose()
    guess = session.classify("this is fine I guess")
    assert guess.label == "accepted"
    session.apply_feedback(Classification("redo", "user", guess.feedback))
    rows = rows_json(store, session.id)
    assert rows[0]["rejected"]["kind"] == "redo" and rows[0]["chosen"] is None


def test_cancel_during_generation_leaves_the_session_consistent(store, config, script_file):
    slow = ScriptedTeacher("a", {"worker": [worker_answer(A) * 20, worker_answer(B)]}, delay_s=0.05)
    pool = TeacherPool(config, extra={"a": slow, "b": ScriptedTeacher("b")})
    session = Session.start(store, pool, config, script_file, "say goodbye")
    session.plan()
    cancel = threading.Event()
    seen = []

    def on_token(agent, text):
        if agent == "worker":
            seen.append(text)
            cancel.set()

    with pytest.raises(GenerationCancelled):
        session.propose(on_token=on_token, cancel=cancel)
    assert seen and rows_json(store, session.id) == []
    reloaded = Session.resume(store, pool, config, session.id)
    assert reloaded.status == "working"
    assert reloaded.propose().script == B


def test_the_users_own_edit_is_the_accepted_output(store, config, script_file):
    session, a, _ = make_session(store, config, script_file, {"worker": [worker_answer(A)]})
    session.plan()
    session.propose()
    edited = 'print("hello")\nprint("bye, edited by hand")\n'
    with pytest.raises(InputError, match="does not parse"):
        session.accept_user_edit("def broken(:\n")
    assert session.status == "review"
    session.accept_user_edit(edited)
    rows = list(store.rows(session.id))
    refused = [r for r in rows if r.rejected]
    assert [r.rejected.kind for r in refused] == ["further_edit"] and refused[0].rejected.script == A
    assert all(r.chosen.script == edited and r.chosen.origin == "user_edit" and r.chosen.teacher is None for r in rows)
    lp = rows[0].chosen.logprobs  # a worker teacher that can score labelled the user's text
    assert lp.source == "rescored" and lp.prompt_sha == rows[0].prompt.sha and a.scored[-1][1] == rows[0].chosen.text
    assert session.current_script == edited and session.step_index == 1


def test_an_unchanged_edit_is_a_plain_accept(store, config, script_file):
    session, a, _ = make_session(store, config, script_file, {"worker": [worker_answer(A)]})
    session.plan()
    session.propose()
    session.accept_user_edit(A)
    rows = list(store.rows(session.id))
    assert len(rows) == 1 and rows[0].rejected is None and rows[0].chosen.origin == "model"


def test_skip_and_edit_a_step_and_the_stall_says_why(store, config, script_file):
    config.session.switch_teacher_after = 1
    session, a, b = make_session(store, config, script_file, {"planner": ["1. First\n2. Second"],
                                                              "worker": ["no code", worker_answer(FAILING)]},
                                 {"worker": ["still no code"]})
    session.plan()
    events = []
    with pytest.raises(AttemptsExhausted, match="try again, edit or skip"):
        session.propose(emit=events.append)
    assert session.status == "stalled" and session.steps[0].status == "stalled"
    assert session.stall.attempts == 2 and "malformed" in session.stall.reason and session.stall.teachers == ["a", "b"]
    assert any(e.kind == "stalled" for e in events)
    resumed = Session.resume(store, session.pool, config, session.id)
    assert resumed.stall == session.stall  # it is saved
    resumed.edit_step("First, but simpler")
    assert resumed.steps[0].text == "First, but simpler"
    resumed.skip_step()
    assert resumed.steps[0].status == "skipped" and resumed.step_index == 1 and resumed.stall is None
    assert all(r.chosen is None for r in store.rows(session.id))  # a skipped step is never trained on
    with pytest.raises(InputError):
        resumed.edit_step("   ")


def test_a_reworded_step_starts_a_new_prompt_and_its_old_rows_never_get_the_new_chosen(store, config, script_file):
    """Issue #23 item 6: `E` rewords the step. The error row written under the old words pairs the old
    instruction with a failing script; the accepted script answers the new words, so it is the chosen of
    the rows of the new prompt only, and the old row keeps its words (`step`) and no chosen."""
    from engine.store.check import check_data

    session, a, _ = make_session(store, config, script_file, {
        "planner": ["1. Add a goodbye line"],
        "lead": ["Add a goodbye line.", "Fix the ValueError.", "Print goodbye with an exclamation mark."],
        "worker": [worker_answer(FAILING), worker_answer(A), worker_answer(C)],
    })
    session.plan()
    assert session.propose().script == A  # cycle 1 failed (an error row), cycle 2 waits for review
    session.edit_step("Say goodbye loudly")
    assert session.status == "working" and session.pending_proposal() is None  # A answered the old words
    proposal = session.propose()
    assert proposal.script == C and proposal.step == "Say goodbye loudly"
    session.apply_feedback(Classification("accepted", "user", "good"))
    old, new = sorted(store.rows(session.id), key=lambda r: r.cycle)
    assert old.step == "Add a goodbye line" and old.rejected.script == FAILING and old.chosen is None
    assert "Say goodbye loudly" not in old.prompt.chat()[-1]["content"]
    assert new.step == "Say goodbye loudly" and "Say goodbye loudly" in new.prompt.chat()[-1]["content"]
    assert new.rejected is None and new.chosen.script == C  # the new words had no rejection: one row, rejected empty
    assert store.worker_rows(session.id, 0) == [new]
    assert check_data(config.data_dir) == []


def test_a_stalled_step_reworded_then_written_by_the_user_gets_a_prompt_in_the_new_words(store, config, script_file):
    """After `E` on a stall, `e`: no cycle ran under the new words, so the user's script gets the prompt a
    cycle without a lead instruction sends; the failed attempts (old words) keep no chosen."""
    from engine.store.check import check_data

    session, _, _ = make_session(store, config, script_file, {"worker": [worker_answer(FAILING)] * 2},
                                 {"worker": [worker_answer(FAILING)] * 2})
    session.plan()
    with pytest.raises(AttemptsExhausted):
        session.propose()
    failed = list(store.rows(session.id))
    session.edit_step("Print goodbye")
    session.accept_user_edit(A)
    rows = list(store.rows(session.id))
    assert all(r.chosen is None for r in rows if r.row_id in {f.row_id for f in failed})
    (mine,) = [r for r in rows if r.chosen is not None]
    assert mine.step == "Print goodbye" and mine.rejected is None and mine.chosen.script == A
    assert "Print goodbye" in mine.prompt.chat()[-1]["content"]
    assert check_data(config.data_dir) == []
