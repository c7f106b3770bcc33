"""The student back in the loop: as a teacher, in side-chain and student-first modes; re-scoring; exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.agents.analyzer import Classification
from engine.config import TeacherConfig, load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.base import SamplingParams
from engine.teachers.pool import TeacherPool
from engine.teachers.student import StudentTeacher
from helpers import ScriptedTeacher, worker_answer, rows_json
from tui.cli import main

GOOD = 'print("hello")\nprint("bye")\n'
GOOD2 = 'print("hello")\nprint("bye")\nprint("bye again")\n'
STUDENT_OK = 'print("hello")\nprint("bye!")\n'
MESSAGES = [{"role": "user", "content": "Write print(1)"}]


def write_config(shake_env, extra: str) -> None:
    (shake_env / "config.toml").write_text(
        '[teachers.a]\nbackend = "embedded"\n[teachers.s1]\nbackend = "embedded"\n[teachers.s2]\nbackend = "embedded"\n'
        '[agents]\nplanner = ["a"]\nlead = ["a"]\nworker = ["a"]\nanalyzer = ["a"]\n[session]\nswitch_teacher_after = 2\n'
        '[analyzer]\nscoring = "off"\n'  # scripted teachers' scores are placeholders
        + extra)


@pytest.mark.slow
def test_a_student_is_a_teacher_with_logprobs():
    """The default student (the bundled GGUF as a `student` teacher) on transformers in fp32. A trained model
    writes text that its own tokenizer gives back token for token (a random one does not: twelve newline
    tokens re-tokenize to three), so scoring the text teacher-forces the very tokens it generated; in fp32,
    decoding with the KV cache and scoring in one pass then agree to rounding."""
    from engine.teachers.embedded import default_gguf_path

    teacher = StudentTeacher(TeacherConfig(name="stud", backend="student", model=str(default_gguf_path()),
                                           precision="fp32", serve="transformers"))
    teacher.health()
    gen = teacher.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=12, top_logprobs=4))
    assert teacher.identity.backend == "student" and teacher.identity.quantization == "merged"
    assert len(gen.tokens) == 12 and all(len(t.top) == 4 and t.token_id >= 0 for t in gen.tokens)
    assert b"".join(t.token_bytes for t in gen.tokens).decode("utf-8", errors="replace") == gen.text
    scored = teacher.score(MESSAGES, gen.text, top_logprobs=4)
    assert scored.token_ids.tolist() == [t.token_id for t in gen.tokens]  # the same tokens ...
    np.testing.assert_allclose(scored.logprobs, [t.logprob for t in gen.tokens], atol=1e-4)  # ... the same numbers


@pytest.mark.slow
def test_a_student_on_llama_cpp_is_the_embedded_teacher_on_its_gguf():
    """Served on llama.cpp (`serve = "auto"`), the default student with no adapter is the bundled GGUF: its
    generation and its scoring are the embedded teacher's, number for number, under the student's identity.
    (On a quantized GGUF llama.cpp's one-token decode and its batched scoring are different kernels and
    differ by up to ~0.15 nats per token, so generation is compared with generation, scoring with scoring.)"""
    from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path

    student = StudentTeacher(TeacherConfig(name="stud", backend="student", model=str(default_gguf_path())))
    student.health()
    assert student.serving.engine == "llama.cpp" and student.identity.backend == "student"
    embedded = EmbeddedTeacher(TeacherConfig(name="e", model=str(default_gguf_path()), constrain="off"))
    sampling = SamplingParams(temperature=0.0, max_tokens=12, top_logprobs=4)
    gen, want = student.generate(MESSAGES, sampling), embedded.generate(MESSAGES, sampling)
    assert gen.identity.backend == "student" and len(gen.tokens) == 12
    assert [t.token_id for t in gen.tokens] == [t.token_id for t in want.tokens] and gen.text == want.text
    np.testing.assert_allclose([t.logprob for t in gen.tokens], [t.logprob for t in want.tokens], atol=1e-6)
    assert [[c.token_id for c in t.top] for t in gen.tokens] == [[c.token_id for c in t.top] for t in want.tokens]
    scored, want_scored = student.score(MESSAGES, gen.text, top_logprobs=4), embedded.score(MESSAGES, gen.text, top_logprobs=4)
    assert scored.token_ids.tolist() == want_scored.token_ids.tolist() == [t.token_id for t in gen.tokens]
    np.testing.assert_allclose(scored.logprobs, want_scored.logprobs, atol=1e-6)


def test_a_training_run_is_a_teacher(one_step_run):
    teacher = StudentTeacher(TeacherConfig(name="stud", backend="student", model=str(one_step_run)))
    gen = teacher.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=4, top_logprobs=2))
    assert teacher.identity.quantization == "lora" and teacher.identity.model == "run@final" and gen.tokens


def session_with(shake_env, script_file, extra, teachers, request="say bye"):
    write_config(shake_env, extra)
    config = load_config()
    pool = TeacherPool(config, extra=teachers)
    store = DatasetStore(config.data_dir)
    session = Session.start(store, pool, config, script_file, request)
    session.plan()
    return session, store


def test_side_chain_stores_worse_student_answers_as_negatives(shake_env, script_file):
    # judge calls in order: lead 1, lead 2, worker 2, lead 3, worker 3 (cycle 1's student is malformed; a
    # one-change request has no planner call)
    # each proposal differs from the script it is reviewed against: one that does not is a no-op (issue #26)
    a = ScriptedTeacher("a", {"worker": [worker_answer(GOOD), worker_answer(GOOD2), worker_answer(GOOD2)],
                              "judge": ["B", "B", "A", "B", "B"]})
    s1 = ScriptedTeacher("s1", {"worker": ["no code at all", worker_answer(STUDENT_OK), worker_answer(STUDENT_OK)]},
                         backend="student")
    session, store = session_with(shake_env, script_file,
                                  '[student]\nmode = "side-chain"\nteachers = ["s1"]\n', {"a": a, "s1": s1})
    with store:
        session.propose()  # cycle 1: the student's answer is malformed -> negative
        session.apply_feedback(Classification("further_edit", "user", "more"))
        session.propose()  # cycle 2: both run, the judge says A (teacher) -> negative
        session.apply_feedback(Classification("redo", "user", "again"))
        session.propose()  # cycle 3: both run, the judge says B -> nothing stored
        session.apply_feedback(Classification("accepted", "user", ""))
        rows = rows_json(store)
    assert all(r["agent"] == "worker" for r in rows)  # the judge preferred the student's plans and instructions
    kinds = [r["rejected"]["kind"] for r in rows]
    assert kinds.count("student") == 2 and kinds.count("further_edit") == 1 and kinds.count("redo") == 1
    students = [r for r in rows if r["rejected"]["kind"] == "student"]
    assert "malformed" in students[0]["rejected"]["error"] and "judged its own answer better" in students[1]["rejected"]["error"]
    assert all(r["rejected"]["student_version"] == "scripted-s1" for r in students)
    assert all(r["chosen"]["script"] == GOOD2 for r in rows)  # the accepted teacher output is their chosen


@pytest.mark.parametrize("share, expected", [(1.0, {"scripted-s1"}), (0.0, {"scripted-s2"})])
def test_mixed_policy_share_between_first_and_latest_student(shake_env, script_file, share, expected):
    a = ScriptedTeacher("a", {"worker": [worker_answer(GOOD + f"print({i})\n") for i in range(4)]})  # each a change
    s1 = ScriptedTeacher("s1", {"worker": ["junk"] * 4}, backend="student")
    s2 = ScriptedTeacher("s2", {"worker": ["junk"] * 4}, backend="student")
    session, store = session_with(
        shake_env, script_file, f'[student]\nmode = "side-chain"\nteachers = ["s1", "s2"]\nfirst_share = {share}\n',
        {"a": a, "s1": s1, "s2": s2})
    with store:
        for _ in range(3):
            session.propose()
            session.apply_feedback(Classification("further_edit", "user", "more"))
        versions = {r["rejected"]["student_version"] for r in rows_json(store) if r["rejected"]["kind"] == "student"}
    assert versions == expected


def test_student_first_falls_back_to_the_teacher_and_rescoring_uses_the_kd_teacher(shake_env, script_file):
    failing = worker_answer("raise SystemExit('nope')\n")
    student = ScriptedTeacher("s1", {"worker": [failing, failing]}, backend="student")
    a = ScriptedTeacher("a", {"worker": [worker_answer(GOOD)]})
    session, store = session_with(
        shake_env, script_file, '[student]\nmode = "student-first"\nteachers = ["s1"]\nkd_teacher = "a"\n',
        {"a": a, "s1": student})
    with store:
        assert [t.identity.name for t in session.worker_teachers()] == ["s1", "a"]
        events = []
        proposal = session.propose(emit=events.append)
        assert proposal.teacher["name"] == "a"  # the teacher took over after 2 failed student attempts
        assert any(e.kind == "switch" for e in events)
        session.apply_feedback(Classification("accepted", "user", ""))
        rows = rows_json(store)
        assert [r["rejected"]["teacher"]["name"] for r in rows] == ["s1", "s1"]
        lp = rows[0]["chosen"]["logprobs"]
        prompt = rows[0]["prompt"]["messages"]
        direct = a.score(prompt, rows[0]["chosen"]["text"], top_logprobs=session.config.teacher("a").top_logprobs)
        got = store.get_logprobs(lp["blob"])
        np.testing.assert_array_equal(got.logprobs, direct.logprobs)
        assert lp["source"] == "rescored" and lp["scorer"]["name"] == "a"


def test_kd_teacher_scores_a_chosen_from_another_teacher(shake_env, script_file):
    b = ScriptedTeacher("b", {"worker": [worker_answer(GOOD)]}, logprobs=False)
    a = ScriptedTeacher("a")
    write_config(shake_env, '[student]\nkd_teacher = "a"\n')
    (shake_env / "config.toml").write_text((shake_env / "config.toml").read_text().replace('[teachers.s1]', '[teachers.b]\nbackend = "embedded"\n[teachers.s1]').replace('worker = ["a"]', 'worker = ["b"]'))
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": a, "b": b}), config, script_file, "say bye")
        session.plan()
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
        row = rows_json(store)[0]
        lp = row["chosen"]["logprobs"]
        assert lp["source"] == "rescored" and lp["scorer"]["name"] == "a"
        np.testing.assert_array_equal(store.get_logprobs(lp["blob"]).logprobs,
                                      a.score(row["prompt"]["messages"], row["chosen"]["text"],
                                              top_logprobs=config.teacher("a").top_logprobs).logprobs)


def test_data_rescore_fills_soft_labels_resumably(shake_env, script_file, smol_teacher, capsys):
    b = ScriptedTeacher("b", {"worker": [worker_answer(GOOD)]}, logprobs=False)
    write_config(shake_env, "")
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": b}), config, script_file, "say bye")
        session.plan()
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
        assert rows_json(store)[0]["chosen"]["logprobs"] is None  # the teacher gave none
    assert main(["data", "rescore", "--teacher", "a"]) == 0  # "a" is the embedded SmolLM2 in this config
    assert "rescored 1 steps" in capsys.readouterr().out
    with DatasetStore(config.data_dir) as store:
        row = rows_json(store)[0]
        got = store.get_logprobs(row["chosen"]["logprobs"]["blob"])
        direct = smol_teacher.score(row["prompt"]["messages"], row["chosen"]["text"], top_logprobs=20)
        assert got.token_ids.tolist() == direct.token_ids.tolist()
        np.testing.assert_allclose(got.logprobs, direct.logprobs, atol=1e-5)
    assert main(["data", "rescore", "--teacher", "a"]) == 0  # resumable: nothing left to do
    out = capsys.readouterr().out
    assert "rescored 0 steps" in out and "1 already had" in out


def test_export_as_hugging_face_dataset(shake_env, script_file, capsys):
    a = ScriptedTeacher("a", {"worker": [worker_answer(GOOD)]})
    session, store = session_with(shake_env, script_file, "", {"a": a})
    with store:
        session.propose()
        session.apply_feedback(Classification("accepted", "user", ""))
    assert main(["data", "export", "--hf", str(shake_env / "hf")]) == 0
    from datasets import load_from_disk

    ds = load_from_disk(str(shake_env / "hf"))
    assert ds.num_rows == 1 and {"prompt", "chosen", "rejected", "chosen_logprobs"} <= set(ds.column_names)
    assert ds[0]["chosen"][0]["content"] == worker_answer(GOOD)


def test_ollama_export_writes_a_modelfile(one_step_run, tmp_path):
    from trainer.export import export_student

    exported = export_student(one_step_run, tmp_path / "out", ollama=True)
    text = exported.modelfile.read_text()
    assert "FROM ./merged" in text and "<|im_start|>" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert (exported.merged / "config.json").exists()
    assert json.loads((exported.merged / "config.json").read_text())["model_type"] == "llama"


def test_gguf_export_runs_on_llama_cpp_with_the_same_numbers(tiny_student, tmp_path):
    from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path
    from trainer.gguf_export import export_gguf

    out = export_gguf(Path(tiny_student), tmp_path / "student.gguf", default_gguf_path())
    as_gguf = EmbeddedTeacher(TeacherConfig(name="g", model=str(out), n_ctx=512))
    as_hf = StudentTeacher(TeacherConfig(name="h", backend="student", model=tiny_student, precision="fp32"))
    text = "print('hello world')\n"
    a = as_gguf.score(MESSAGES, text, top_logprobs=3)
    b = as_hf.score(MESSAGES, text, top_logprobs=3)
    assert a.token_ids.tolist() == b.token_ids.tolist()
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=2e-3)


def test_gguf_export_refuses_a_student_without_a_source_gguf(one_step_run, tmp_path):
    from trainer.errors import TrainError
    from trainer.export import export_student

    with pytest.raises(TrainError, match="convert_hf_to_gguf"):
        export_student(one_step_run, tmp_path / "out", gguf=True)
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_side_chain_covers_the_planner_lead_and_analyzer(shake_env, script_file):
    a = ScriptedTeacher("a", {"planner": ["1. Say bye"], "lead": ["Add a print of bye."], "analyzer": ["ACCEPTED"],
                              "worker": [worker_answer(GOOD)], "judge": ["A", "A", "B"]})
    s1 = ScriptedTeacher("s1", {"planner": ["bye"], "lead": ["do it"], "analyzer": ["REDO"],
                                "worker": [worker_answer(STUDENT_OK)]}, backend="student")
    session, store = session_with(shake_env, script_file, '[student]\nmode = "side-chain"\nteachers = ["s1"]\n',
                                  {"a": a, "s1": s1}, request="First say bye. Then stop.")  # planned: a planner row
    with store:
        session.propose()
        label = session.classify("looks right")
        session.apply_feedback(label)
        rows = rows_json(store)
    by_agent = {r.get("agent", "worker"): r for r in rows}
    assert set(by_agent) == {"planner", "lead", "analyzer", "worker"}
    for agent, teacher_text, student_text in (("planner", "1. Say bye", "bye"), ("lead", "Add a print of bye.", "do it"),
                                              ("analyzer", "ACCEPTED", "REDO")):
        row = by_agent[agent]
        assert row["chosen"]["text"] == teacher_text and row["rejected"]["text"] == student_text
        assert row["rejected"]["kind"] == "student" and row["chosen"]["logprobs"]["n_tokens"] > 0
        assert row["prompt"]["messages"][0]["role"] == "system"
    assert by_agent["worker"]["chosen"]["script"] == GOOD and by_agent["worker"]["rejected"] is None
