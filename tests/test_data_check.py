"""`shake data check [--fix]` and bad data files: every corruption planted by hand is named, never skipped
silently; clean data from real sessions passes."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.agents.analyzer import Classification
from engine.config import load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer
from tui.cli import main

GOOD = 'print("hello")\nprint("bye")\n'
FAILING = "raise SystemExit('nope')\n"


@pytest.fixture
def clean_data(shake_env, script_file):
    """A side-chain session with every kind of row: error, Redo, student negatives, planner, lead and analyzer
    rows, an accept with an empty rejected."""
    (shake_env / "config.toml").write_text(
        '[teachers.a]\nbackend = "embedded"\n[teachers.s1]\nbackend = "embedded"\n'
        '[agents]\nplanner = ["a"]\nlead = ["a"]\nworker = ["a"]\nanalyzer = ["a"]\n[session]\nswitch_teacher_after = 5\n'
        '[student]\nmode = "side-chain"\nteachers = ["s1"]\n'
        '[analyzer]\nscoring = "off"\n')  # scripted teachers' scores are placeholders
    config = load_config()
    a = ScriptedTeacher("a", {"planner": ["1. Say bye\n2. Say it twice"], "analyzer": ["REDO", "ACCEPTED", "ACCEPTED"],
                              "worker": [worker_answer(FAILING), worker_answer(GOOD), worker_answer(GOOD + "#2\n"),
                                         worker_answer(GOOD + "print('bye')\n")],
                              "judge": ["A"] * 30})
    s1 = ScriptedTeacher("s1", {"planner": ["no"], "lead": ["x"] * 9, "analyzer": ["EDIT"] * 3,
                                "worker": ["no code"] * 9}, backend="student")
    with DatasetStore(config.data_dir) as store:
        session = Session.start(store, TeacherPool(config, extra={"a": a, "s1": s1}), config, script_file, "say bye")
        session.plan()
        session.propose()  # cycle 1 fails, cycle 2 runs
        session.apply_feedback(session.classify("no, that is wrong"))  # REDO
        session.propose()
        session.apply_feedback(session.classify("looks good"))  # accepted
        session.propose()
        session.apply_feedback(Classification("accepted", "explicit", ""))
        assert session.status == "done"
        sid = session.id
    return config.data_dir, sid


def session_json(data_dir, sid) -> dict:
    return json.loads((data_dir / "sessions" / f"{sid}.json").read_text())


def write_json(data_dir, sid, doc) -> None:
    (data_dir / "sessions" / f"{sid}.json").write_text(json.dumps(doc))


def rows_of(doc, agent=None, kind="any"):
    out = []
    for key, row in doc["rows"].items():
        if agent and row["agent"] != agent:
            continue
        if kind != "any" and (row["rejected"] or {}).get("kind") != kind:
            continue
        out.append(row)
    return out


def check(capsys) -> tuple[int, str]:
    code = main(["data", "check"])
    return code, capsys.readouterr().out


def test_clean_session_data_passes(clean_data, capsys):
    code, out = check(capsys)
    assert code == 0 and "no problems" in out, out
    data_dir, sid = clean_data
    agents = {r["agent"] for r in session_json(data_dir, sid)["rows"].values()}
    assert agents == {"planner", "lead", "analyzer", "worker"}


def plant_student_scored(doc):  # item 1
    row = rows_of(doc, "worker")[0]
    for r in rows_of(doc, "worker"):
        if r["step_index"] == row["step_index"]:
            r["chosen"]["logprobs"]["scorer"]["backend"] = "student"
    return "scored by the student"


def plant_lead_chosen_in_worker_rows(doc):  # item 2
    lead = rows_of(doc, "lead")[0]
    for r in rows_of(doc, "worker"):
        if r["step_index"] == lead["step_index"]:
            r["chosen"] = lead["chosen"]
    return "carries the lead's chosen"


def plant_backwards_analyzer_label(doc):  # item 3
    row = rows_of(doc, "analyzer")[0]
    row["chosen"]["text"] = "ACCEPTED" if "REDO" in row["chosen"]["text"] else "REDO"
    return "where the user's label"


def plant_missing_empty_rejected(doc):  # item 4
    last_step = max(r["step_index"] for r in rows_of(doc, "worker"))
    for key, r in list(doc["rows"].items()):
        if r["agent"] == "worker" and r["step_index"] == last_step and r["rejected"] is None:
            del doc["rows"][key]
    return "needs one row with an empty rejected"


def plant_rescored_under_another_prompt(doc):  # item 6
    for r in rows_of(doc, "worker"):
        if r["chosen"] and r["chosen"]["logprobs"]:
            r["chosen"]["logprobs"]["source"] = "rescored"
            r["chosen"]["logprobs"]["prompt_sha"] = "0" * 64
    return "re-scored under another prompt"


def plant_unknown_prompt(doc):  # item 6, data from before the prompt was recorded
    rows_of(doc, "worker")[0]["chosen"]["logprobs"]["prompt_sha"] = None
    return "unknown prompt"


def plant_different_chosen_in_a_step(doc):
    rows = [r for r in rows_of(doc, "worker") if r["step_index"] == 0]
    rows[0]["chosen"]["text"] += "# changed"
    return "different chosen outputs"


def plant_token_count(doc):
    rows_of(doc, "worker")[0]["chosen"]["logprobs"]["n_tokens"] += 5
    return "the row says"


@pytest.mark.parametrize("plant", [plant_student_scored, plant_lead_chosen_in_worker_rows,
                                   plant_backwards_analyzer_label, plant_missing_empty_rejected,
                                   plant_rescored_under_another_prompt, plant_unknown_prompt,
                                   plant_different_chosen_in_a_step, plant_token_count])
def test_each_planted_corruption_is_named(clean_data, capsys, plant):
    data_dir, sid = clean_data
    doc = session_json(data_dir, sid)
    expected = plant(doc)
    write_json(data_dir, sid, doc)
    code, out = check(capsys)
    assert code == 1 and expected in out, out
    assert f"{sid}.json: step" in out  # names the file and the step


def test_a_deleted_blob_is_named_and_fix_keeps_the_hard_labels(clean_data, capsys):
    data_dir, sid = clean_data
    row = rows_of(session_json(data_dir, sid), "worker")[0]
    blob = row["chosen"]["logprobs"]["blob"]
    (data_dir / "blobs" / blob[:2] / f"{blob}.npz").unlink()
    code, out = check(capsys)
    assert code == 1 and "missing" in out and row["row_id"] in out
    assert main(["data", "check", "--fix"]) == 0
    out = capsys.readouterr().out
    assert "dropped its soft labels" in out and "backup of the data" in out and "no problems" in out
    fixed = session_json(data_dir, sid)
    same_step = [r for r in rows_of(fixed, "worker") if r["step_index"] == row["step_index"]]
    assert all(r["chosen"]["logprobs"] is None and r["chosen"]["text"] == row["chosen"]["text"] for r in same_step)
    backups = list((data_dir / "backups").glob("check-*/sessions/*.json"))
    assert [p.name for p in backups] == [f"{sid}.json"]


BAD_FILES = {
    "list": ("[]", "not list"),
    "empty object": ("{}", "no session state"),
    "not json": ("{oops", "not valid JSON"),
    "row without prompt": (None, "missing field 'prompt'"),
    "chosen as a string": (None, "expected an object, got str"),
    "unknown kind": (None, "is not one of error, redo, further_edit, student"),
    "future schema": (None, "schema version 99"),
}


def bad_doc(name, doc):
    row = next(iter(doc["rows"].values()))
    if name == "row without prompt":
        del row["prompt"]
    elif name == "chosen as a string":
        row["chosen"] = "good"
    elif name == "unknown kind":
        next(r for r in doc["rows"].values() if r["rejected"])["rejected"]["kind"] = "meh"
    elif name == "future schema":
        doc["meta"]["1"]["schema"] = 99
    return json.dumps(doc)


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_named_by_every_command_and_skipped_only_when_told(clean_data, capsys, name):
    data_dir, sid = clean_data
    text, expected = BAD_FILES[name]
    bad = data_dir / "sessions" / "zz-bad.json"
    bad.write_text(text if text is not None else bad_doc(name, session_json(data_dir, sid)))
    for command in (["sessions"], ["data", "stats"], ["data", "export", "--out", str(data_dir / "x.jsonl")]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "zz-bad.json" in err and expected in err and "--skip-bad" in err and "Traceback" not in err
        assert main(command + ["--skip-bad"]) == 0
        captured = capsys.readouterr()
        assert "skipped" in captured.err and "zz-bad.json" in captured.err
    code, out = check(capsys)
    assert code == 1 and "zz-bad.json" in out and expected in out


def test_a_stray_file_does_not_break_sessions_and_fix_sets_it_aside(clean_data, capsys):
    data_dir, sid = clean_data
    (data_dir / "sessions" / "notes.json").write_text('{"todo": "look at row 3"}')
    assert main(["sessions"]) == 2
    assert "notes.json" in capsys.readouterr().err
    assert main(["data", "check", "--fix"]) == 0
    out = capsys.readouterr().out
    assert "moved notes.json" in out and (data_dir / "sessions" / ".bad" / "notes.json").exists()
    assert main(["sessions"]) == 0 and sid in capsys.readouterr().out


def test_read_only_commands_work_beside_a_writer(clean_data, capsys):
    data_dir, sid = clean_data
    with DatasetStore(data_dir):  # the app, or a running session, holds the writer's lock
        assert main(["sessions"]) == 0 and sid in capsys.readouterr().out
        assert main(["data", "stats", "--json"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["rows"] > 0
        assert main(["data", "check"]) == 0


def test_exclusions_are_recorded_undoable_and_left_out_of_export_and_training(clean_data, capsys, tmp_path):
    data_dir, sid = clean_data
    with DatasetStore(data_dir) as store:
        worker = [r for r in store.rows() if r.is_worker and r.chosen]
        assert store.set_excluded([worker[0].row_id], True, "wrong label") == 1
        row = next(r for r in store.rows() if r.row_id == worker[0].row_id)
        assert row.excluded.reason == "wrong label" and not row.trainable
        info = store.snapshot(tmp_path / "snap")
        assert info.excluded == 1 and info.rows == len([r for r in store.rows() if r.trainable])
    assert main(["data", "export", "--out", str(tmp_path / "x.jsonl")]) == 0
    assert "left out 1 excluded row" in capsys.readouterr().out
    exported = [json.loads(x)["row_id"] for x in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert worker[0].row_id not in exported
    with DatasetStore(data_dir) as store:
        assert store.set_excluded([worker[0].row_id], False) == 1
        assert next(r for r in store.rows() if r.row_id == worker[0].row_id).excluded is None
    shutil.rmtree(tmp_path / "snap")


def test_axolotl_export_puts_each_teacher_distribution_on_its_token(dataset, shake_env, monkeypatch, smol_tokenizer,
                                                                    capsys):
    """Axolotl's KD plugin (`chat_template.py`) places `logprobs` on the last len(logprobs) positions of the
    tokenized conversation; every response position must hold the teacher's distribution over that very
    token, and the template's closing tokens one-hot rows."""
    monkeypatch.setenv("SHAKE_DATA", str(dataset))
    out = shake_env / "kd.jsonl"
    assert main(["data", "export", "--format", "axolotl", "--out", str(out)]) == 0
    assert "wrote 8 rows" in capsys.readouterr().out  # one per accepted step
    records = [json.loads(line) for line in out.read_text().splitlines()]
    with DatasetStore(dataset, writable=False) as store:
        chosen = {(r.session_id, r.step_index): store.get_logprobs(r.chosen.logprobs.blob)
                  for r in store.rows() if r.chosen}
    for rec in records:
        ids = smol_tokenizer.apply_chat_template(rec["messages"], tokenize=True, return_dict=True)["input_ids"]
        padding = len(ids) - len(rec["logprobs"])  # the plugin's own arithmetic
        teacher = chosen[(rec["session_id"], rec["step_index"])]
        for j, position in enumerate(rec["logprobs"]):
            token = ids[padding + j]
            entries = {int(e["token"].split(":")[1]): e["logprob"] for e in position}
            if j < len(teacher):
                assert token == int(teacher.token_ids[j])
                assert set(entries) == {int(t) for t in teacher.top_ids[j] if t >= 0}
            else:
                assert entries == {token: 0.0}


def test_readme_shows_the_schema_as_the_records_define_it():
    from pathlib import Path

    from engine.store.schema import schema_markdown

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("<!-- schema:start", 1)[1].split("-->", 1)[1].split("<!-- schema:end -->", 1)[0]
    assert block.strip() == schema_markdown().strip(), "README's schema block is stale: run python -m engine.store.schema"
