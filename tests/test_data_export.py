"""`shake data export`: JSONL on standard output, Parquet refused there, and the JSONL file as TRL reads it."""

from __future__ import annotations

import json
import math
import os
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


def test_a_closed_pipe_ends_the_export_quietly_with_141(paired_rows):
    """`shake data export | true`: the reader left before the export was written; no traceback, and exit
    141 as the README promises (it was 0, so under `set -o pipefail` a cut export looked complete)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # `true` has exited before the first line: every write meets a closed pipe
    try:
        done = subprocess.run([sys.executable, "-m", "tui.cli", "data", "export"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == "", done.stderr


def test_export_to_stdout_says_on_stderr_which_rows_it_left_out(paired_rows, capsys):
    """`--out` said "left out 1 excluded row(s)"; the export to standard output said nothing."""
    with DatasetStore(paired_rows / "data") as store:
        excluded = next(r for r in store.rows() if r.chosen is not None)
        store.set_excluded([excluded.row_id], True, "wrong")
    assert main(["data", "export"]) == 0
    out, err = capsys.readouterr()
    assert excluded.row_id not in out and len(out.splitlines()) == 3  # the JSONL alone on stdout
    assert err == "shake: left out 1 excluded row(s)\n"


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


def test_axolotl_export_carries_a_grammar_spelling_over_by_bytes(tmp_path, smol_tokenizer):
    """A grammar-constrained teacher spells the fixed word `REASONING:` as R|EA|S|ON|ING where the
    student's tokenizer writes RE|AS|ON|ING: the ids-match check dropped the whole step at token 0 (fails
    on 0cf108c). Now the student's tokens whose bytes one teacher token covers keep its soft labels, the
    others are one-hot, and every position is the teacher's top-k wide."""
    import records
    from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
    from engine.store.export import NO_MASS, axolotl_records
    from engine.tokens import StudentVocab

    vocab = StudentVocab(smol_tokenizer)
    text = "REASONING: ok"
    pieces = [b"R", b"EA", b"S", b"ON", b"ING", b":", b" ok"]
    assert b"".join(pieces) == text.encode()
    assert all(p in vocab.by_bytes for p in pieces)
    canonical = [vocab.pieces[i] for i in smol_tokenizer.encode(text, add_special_tokens=False)]
    assert canonical != pieces  # the student writes it otherwise
    tokens = [TokenLogprob(vocab.by_bytes[p], p, -0.5, [TopLogprob(vocab.by_bytes[p], p, -0.5),
                                                         TopLogprob(vocab.by_bytes[b"?"], b"?", -1.5)])
              for p in pieces]
    lp = TokenLogprobs.from_tokens(tokens)
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(records.state())
        blob = store.put_logprobs(lp)
        store.commit(sid, new_rows=[records.row(0, None, records.chosen(text, records.lp_record(blob, len(lp))))])
        out, report = axolotl_records(store, smol_tokenizer)
    assert report.rows == 1 and report.without_soft_labels == 0
    rec = out[0]
    assert {len(x) for x in rec["logprobs"]} == {2} and {len(x) for x in rec["target_token_ids"]} == {2}
    by_piece = {}
    for lps, ids in zip(rec["logprobs"], rec["target_token_ids"]):
        first = vocab.pieces[ids[0]]
        by_piece.setdefault(first, (lps, ids))
    for piece in canonical:
        lps, ids = by_piece[piece]
        if piece in pieces:  # one teacher token covers exactly these bytes: its distribution
            assert lps == [-0.5, -1.5] and vocab.pieces[ids[1]] == b"?"
        else:  # no teacher token covers them alone: the student's own token, one-hot
            assert lps == [0.0, NO_MASS]
