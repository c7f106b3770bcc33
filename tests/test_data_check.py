"""`shake data check [--fix]` and bad data files: every corruption planted by hand is named, never skipped
silently; clean data from real sessions passes."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.agents.analyzer import Classification
from engine.config import load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer
from records import row as rrow
from records import state as rstate
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
        session = Session.start(store, TeacherPool(config, extra={"a": a, "s1": s1}), config, script_file, "say bye, then say it twice")
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
    assert "soft labels on 100.0% of chosen bytes" in out  # the scripted teacher labels every byte
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


def plant_soft_labels_of_another_text(doc):
    step = rows_of(doc, "worker")[0]["step_index"]
    for r in rows_of(doc, "worker"):
        if r["step_index"] == step:
            r["chosen"]["text"] += "\n"  # data written before the store checked it
    return "token bytes are not the chosen's text"


def plant_reasoning_labels_of_another_text(doc):
    step = rows_of(doc, "worker")[0]["step_index"]
    for r in rows_of(doc, "worker"):
        if r["step_index"] == step:
            lp = r["chosen"]["logprobs"]
            lp["thinking_blob"], lp["thinking_tokens"] = lp["blob"], lp["n_tokens"]  # the answer's, not the thinking's
    return "the reasoning's soft labels are not the chosen's thinking"


def plant_token_count(doc):
    rows_of(doc, "worker")[0]["chosen"]["logprobs"]["n_tokens"] += 5
    return "the row says"


@pytest.mark.parametrize("plant", [plant_student_scored, plant_lead_chosen_in_worker_rows,
                                   plant_backwards_analyzer_label, plant_missing_empty_rejected,
                                   plant_rescored_under_another_prompt, plant_unknown_prompt,
                                   plant_different_chosen_in_a_step, plant_token_count,
                                   plant_soft_labels_of_another_text, plant_reasoning_labels_of_another_text])
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


def test_axolotl_export_loads_as_axolotl_s_v2_strategy_reads_it(dataset, shake_env, monkeypatch, smol_tokenizer,
                                                               capsys):
    """`type: axolotl.integrations.kd.chat_template` loads the v2 strategy (float lists + `target_token_ids`);
    the legacy layout failed with KeyError, grammar-constrained steps were dropped, and the closing tokens'
    one-entry rows cut every position to top-1 (fails on 0cf108c). Checked against `axolotl_kd.py`, written
    from Axolotl's source: every accepted step loads, every position is the teacher's top-k wide, its KL is
    finite, and each soft label is a teacher alternative of a token covering exactly the same bytes."""
    import numpy as np

    from axolotl_kd import forward_kl, load_v2
    from engine.store.export import NO_MASS
    from engine.tokens import StudentVocab

    monkeypatch.setenv("SHAKE_DATA", str(dataset))
    out = shake_env / "kd.jsonl"
    assert main(["data", "export", "--format", "axolotl", "--out", str(out)]) == 0
    assert "wrote 8 rows" in capsys.readouterr().out  # one per accepted step, none left out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    vocab = StudentVocab(smol_tokenizer)
    with DatasetStore(dataset, writable=False) as store:
        chosen = {(r.session_id, r.step_index): store.get_logprobs(r.chosen.logprobs.blob)
                  for r in store.rows() if r.chosen and r.chosen.logprobs}
    rng = np.random.default_rng(0)
    for rec in records:
        teacher = chosen[(rec["session_id"], rec["step_index"])]
        sample = load_v2(rec, smol_tokenizer)
        assert sample.target_logprobs.shape[1] == teacher.k  # no position narrowed the width
        trained = sample.target_mask[:, 0].astype(bool)
        assert trained.sum() == len(rec["logprobs"]) and np.isfinite(sample.target_logprobs[trained]).all()
        logits = rng.normal(size=(len(sample.input_ids), vocab.size))
        student = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        assert np.isfinite(forward_kl(sample, student))
        # soft labels carried over by bytes: each is an alternative of the teacher token with the same span
        spans, at = {}, 0
        for i, piece in enumerate(teacher.token_bytes):
            spans[(at, at + len(piece))] = i
            at += len(piece)
        padding = len(sample.input_ids) - len(rec["logprobs"])
        at, text = 0, rec["messages"][-1]["content"].encode()
        for j, (lps, ids) in enumerate(zip(rec["logprobs"], rec["target_token_ids"])):
            token = sample.input_ids[padding + j]
            piece = vocab.pieces[token]
            span, at = (at, at + len(piece)), at + len(piece)
            labels = [(i, v) for i, v in zip(ids, lps) if v != NO_MASS]
            if labels == [(token, 0.0)]:
                continue  # one-hot: the closing tokens, and tokens no teacher token covers alone
            ti = spans[span]
            alts = {(teacher.top_bytes[ti][c], round(float(teacher.top_logprobs[ti, c]), 4)) for c in range(teacher.k)}
            assert all((vocab.pieces[i], round(v, 4)) in alts for i, v in labels)
            assert span[1] <= len(text)


def test_readme_shows_the_schema_as_the_records_define_it():
    from pathlib import Path

    from engine.store.schema import schema_markdown

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("<!-- schema:start", 1)[1].split("-->", 1)[1].split("<!-- schema:end -->", 1)[0]
    assert block.strip() == schema_markdown().strip(), "README's schema block is stale: run python -m engine.store.schema"


# -- a session file cut short: every row that parses is recovered ----------------------------------
def entries(data: bytes, doc: dict) -> tuple[int, dict[str, tuple[int, int]]]:
    """Where, in bytes, the state ends, and where each row's entry (`"key":{...}`) starts and ends, in
    the file the store wrote."""
    text = data.decode("utf-8")
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    # the state's one entry ends a byte before its table does
    state_end = text.index('"state":') + len('"state":' + json.dumps(doc["state"], **compact)) - 1
    spans, at = {}, text.index('"rows":')
    for key, raw in doc["rows"].items():
        entry = json.dumps(key) + ":" + json.dumps(raw, **compact)
        at = text.index(entry, at)
        spans[key] = (len(text[:at].encode("utf-8")), len(text[:at + len(entry)].encode("utf-8")))
        at += len(entry)
    return len(text[:state_end].encode("utf-8")), spans


def test_fix_rebuilds_a_truncated_session_file_from_every_row_that_parses(clean_data, capsys):
    """`--fix` moved a session file truncated in place to .bad/, and every row of it left the dataset."""
    data_dir, sid = clean_data
    path = data_dir / "sessions" / f"{sid}.json"
    whole = path.read_bytes()
    doc = json.loads(whole)
    _, spans = entries(whole, doc)
    keys = list(spans)
    start, end = spans[keys[-2]]
    cut = (start + end) // 2  # inside the last row but one
    path.write_bytes(whole[:cut])  # a copy cut short, in place
    assert main(["data", "check", "--fix"]) == 1  # the rules the two lost rows leave broken stay reported
    out = capsys.readouterr().out
    kept = len(keys) - 2
    assert f"rebuilt it with the session state and the {kept} row(s) that parse" in out
    assert "lost: 1 row(s) begun in it did not parse" in out
    assert "no readable backup" in out or "more row(s) in its backup" in out
    assert (data_dir / "sessions" / ".bad" / f"{sid}.json").read_bytes() == whole[:cut]  # the damaged original
    rebuilt = session_json(data_dir, sid)
    assert list(rebuilt["rows"]) == keys[:kept] and rebuilt["state"] == doc["state"]
    assert [rebuilt["rows"][k] for k in keys[:kept]] == [doc["rows"][k] for k in keys[:kept]]
    with DatasetStore(data_dir, writable=False) as store:
        assert store.stats().rows == kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=30), max_size=4), cut_fraction=st.floats(0, 1))
def test_salvage_keeps_exactly_the_rows_written_whole_before_the_cut(tmp_path_factory, texts, cut_fraction):
    """The rule: a session file cut at any byte gives back its state and exactly the rows whose entries lie
    wholly before the cut, each as it was; the one row the cut went through (if any) is counted lost."""
    from engine.store.salvage import salvage

    folder = tmp_path_factory.mktemp("salvage")
    with DatasetStore(folder) as store:
        sid = store.create_session(rstate(request="r \u2028 é"))
        store.commit(sid, new_rows=[rrow(0, "error", text=text) for text in texts])
        data = (folder / "sessions" / f"{sid}.json").read_bytes()
        originals = {r.row_id: r for r in store.rows(sid)}
    state_end, spans = entries(data, json.loads(data))
    cut = round(cut_fraction * len(data))
    saved = salvage(data[:cut], "x.json")
    if cut < state_end:
        assert saved.file is None and saved.recovered == 0
        return
    whole = [key for key, (_, end) in spans.items() if end <= cut]
    begun = [key for key, (start, end) in spans.items() if start < cut < end]
    assert saved.file is not None and list(saved.file.rows) == whole and saved.recovered == len(whole)
    assert [row.row_id for row in saved.file.rows.values()] == list(originals)[:len(whole)]
    assert all(row == originals[row.row_id] for row in saved.file.rows.values())
    assert saved.lost == len(begun) <= 1
    assert (saved.cut_at is None) == (cut == len(data))
