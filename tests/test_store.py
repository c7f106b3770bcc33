"""The dataset store: atomic writes, sharding, the process lock, blobs, snapshot and export."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from engine.errors import StoreError, StoreLocked
from engine.logprobs import TokenLogprobs
from engine.store import DatasetStore, Snapshot
from engine.store.atomic import atomic_write_bytes
from engine.store.export import export_dataset
from engine.teachers.base import SamplingParams
from helpers import fake_tokens
from records import chosen, lp_record, row, state


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    with DatasetStore(tmp_path):
        with pytest.raises(StoreLocked, match="in use by another shake process"):
            DatasetStore(tmp_path)
    DatasetStore(tmp_path).close()  # released on close


def test_rows_are_sharded_by_session_and_chosen_fills_a_step(tmp_path):
    with DatasetStore(tmp_path) as store:
        s1 = store.create_session(state())
        s2 = store.create_session(state())
        store.commit(s1, new_rows=[row(0, "error"), row(0, "redo"), row(1, "redo")])
        store.commit(s2, new_rows=[row(0, "further_edit")])
        store.commit(s1, chosen_for_step=(0, chosen("good")))
        rows = list(store.rows(s1))
        assert [r.chosen.text if r.chosen else None for r in rows] == ["good", "good", None]
        assert len(list(store.rows(s2))) == 1
        assert (tmp_path / "sessions" / f"{s1}.json").exists()
        stats = store.stats()
        assert stats.rows == 4 and stats.complete_rows == 2 and stats.by_kind["redo"] == 2


def test_logprob_blobs_round_trip_and_stay_out_of_the_json(tmp_path):
    lp = TokenLogprobs.from_tokens(fake_tokens("hello world, " * 200))
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(state())
        digest = store.put_logprobs(lp)
        store.commit(sid, new_rows=[row(0, None, chosen("hello world, " * 200, lp_record(digest, len(lp))))])
        back = store.get_logprobs(digest)
    assert back.token_bytes == lp.token_bytes
    np.testing.assert_array_equal(back.top_logprobs, lp.top_logprobs)
    shard = (tmp_path / "sessions" / f"{sid}.json").read_text()
    assert len(shard) < 2000 + 2 * len("hello world, " * 200)  # text and script hold it; the arrays are not there


def test_soft_labels_that_do_not_spell_the_chosen_are_refused_when_written_and_counted(tmp_path):
    """A record whose token bytes are another text (thinking + answer, a stop string, U+FFFD for a piece of
    a character) was stored with the row as if it labelled it (fails on 0cf108c)."""
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(state())
        right = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("good answer")))
        wrong = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("Let me think. good answer")))
        store.commit(sid, new_rows=[row(0, "error"), row(1, "error")])
        store.commit(sid, chosen_for_step=(0, chosen("good answer", lp_record(right, 3))))
        store.commit(sid, chosen_for_step=(1, chosen("good answer", lp_record(wrong, 7))))
        store.commit(sid, new_rows=[row(2, None, chosen("good answer", lp_record(wrong, 7)))])
        by_step = {r.step_index: r.chosen for r in store.rows(sid)}
        stats = store.stats()
    assert by_step[0].logprobs is not None and not by_step[0].soft_labels_refused
    for step in (1, 2):
        assert by_step[step].logprobs is None and "not the chosen's 11-byte text" in by_step[step].soft_labels_refused
    assert stats.soft_labels_refused == 2 and stats.with_logprobs == 1
    assert (stats.chosen_bytes, stats.labelled_bytes) == (33, 11)
    assert stats.soft_label_coverage == pytest.approx(1 / 3)


def test_coverage_counts_only_the_bytes_with_alternatives(tmp_path):
    from engine.logprobs import TokenLogprob

    tokens = fake_tokens("abcdefgh") + [TokenLogprob(-1, b"ij", float("nan"), [])]  # an unlabelled span
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(state())
        digest = store.put_logprobs(TokenLogprobs.from_tokens(tokens))
        store.commit(sid, new_rows=[row(0, None, chosen("abcdefghij", lp_record(digest, 3)))])
        stats = store.stats()
    assert (stats.chosen_bytes, stats.labelled_bytes, stats.soft_labels_refused) == (10, 8, 0)


def test_corrupt_blob_is_detected(tmp_path):
    with DatasetStore(tmp_path) as store:
        digest = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("abc")))
        path = store.blobs.path_for(digest)
        path.write_bytes(path.read_bytes()[:-3] + b"xyz")
        with pytest.raises(StoreError, match="corrupt"):
            store.get_logprobs(digest)


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StoreError, match="previous version is intact"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_non_finite_numbers_are_refused_not_written(tmp_path):
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(state())
        before = (tmp_path / "sessions" / f"{sid}.json").read_bytes()
        bad = row()
        bad = bad.__class__(**{**bad.__dict__, "rejected": bad.rejected.__class__(
            **{**bad.rejected.__dict__, "sampling": SamplingParams(temperature=float("nan"))})})
        with pytest.raises(StoreError, match="non-finite"):
            store.commit(sid, new_rows=[bad])
        assert (tmp_path / "sessions" / f"{sid}.json").read_bytes() == before
        assert list(store.rows(sid)) == []


def test_snapshot_is_frozen_and_hashed(tmp_path):
    with DatasetStore(tmp_path / "data") as store:
        sid = store.create_session(state())
        digest = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("good")))
        store.commit(sid, new_rows=[row(0, "error"), row(1, "redo")])
        store.commit(sid, chosen_for_step=(0, chosen("good", lp_record(digest, 1))))
        info = store.snapshot(tmp_path / "snap")
        store.commit(sid, new_rows=[row(0, "redo", chosen("later"))])  # added after the snapshot
    snap = Snapshot(tmp_path / "snap")
    assert info.rows == 1 and len(snap.rows) == 1 and snap.sha256 == info.sha256
    assert snap.logprobs(snap.rows[0]).text == "good"
    (tmp_path / "snap" / "rows.jsonl").write_text("{}\n")
    with pytest.raises(StoreError, match="modified"):
        Snapshot(tmp_path / "snap")


def test_snapshot_carries_the_reasoning_s_soft_labels_too(tmp_path):
    """A chosen's reasoning has its own blob (`LogprobRecord.thinking_blob`): the snapshot the trainer reads
    holds it beside the answer's (before, only `blob` was copied and the record named a missing file)."""
    from dataclasses import replace

    with DatasetStore(tmp_path / "data") as store:
        sid = store.create_session(state())
        answer = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("good")))
        thinking = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("hmm")))
        record = replace(lp_record(answer, 1), thinking_blob=thinking, thinking_tokens=1)
        store.commit(sid, new_rows=[row(0, None, replace(chosen("good", record), thinking="hmm"))])
        store.snapshot(tmp_path / "snap")
    (stored,) = Snapshot(tmp_path / "snap").rows
    assert stored.chosen.logprobs.thinking_blob == thinking and not stored.chosen.soft_labels_refused
    assert (tmp_path / "snap" / "blobs" / f"{thinking}.npz").exists()


def test_export_jsonl_has_trl_columns(tmp_path):
    with DatasetStore(tmp_path / "data") as store:
        sid = store.create_session(state())
        digest = store.put_logprobs(TokenLogprobs.from_tokens(fake_tokens("good answer")))
        store.commit(sid, new_rows=[row(0, "error"), row(1, None), row(2, "redo")])
        store.commit(sid, chosen_for_step=(0, chosen("good answer", lp_record(digest, 3))))
        store.commit(sid, chosen_for_step=(1, chosen("fine")))
        n = export_dataset(store, tmp_path / "out.jsonl").rows
        paired = export_dataset(store, tmp_path / "paired.jsonl", paired_only=True).rows
        export_dataset(store, tmp_path / "out.parquet", "parquet")
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert n == 2 and paired == 1  # the pending row of step 2 is left out
    first = lines[0]
    assert first["prompt"][0]["role"] == "user"
    assert first["chosen"] == [{"role": "assistant", "content": "good answer"}]
    assert first["rejected"][0]["content"] == "bad" and first["rejected_kind"] == "error"
    assert first["chosen_logprobs"]["tokens"][0] == "good"
    assert lines[1]["rejected"] is None and lines[1]["chosen_logprobs"] is None
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out.parquet").num_rows == 2


def test_a_session_file_over_the_cap_is_refused_unread_and_never_written(tmp_path, monkeypatch):
    """A 150 MB session file cost 522 MB in every reader: there was no cap on what a reader loads."""
    from engine.errors import BadDataFile
    from engine.store import store as store_module

    with DatasetStore(tmp_path) as store:
        sid = store.create_session(state())
        store.commit(sid, new_rows=[row(0, "error")])
        size = (tmp_path / "sessions" / f"{sid}.json").stat().st_size
    monkeypatch.setattr(store_module, "MAX_SESSION_FILE_BYTES", size - 1)
    with DatasetStore(tmp_path, writable=False) as reader:
        with pytest.raises(BadDataFile, match=f"is {size} bytes, over the {size - 1} bytes"):
            reader.load_state(sid)
    monkeypatch.setattr(store_module, "MAX_SESSION_FILE_BYTES", size + 10)
    with DatasetStore(tmp_path) as store:
        before = (tmp_path / "sessions" / f"{sid}.json").read_bytes()
        with pytest.raises(StoreError, match="would grow to .* the previous version is intact"):
            store.commit(sid, new_rows=[row(0, "redo", text="x" * 100)])
        assert (tmp_path / "sessions" / f"{sid}.json").read_bytes() == before


def test_a_session_file_nested_thousands_deep_is_a_bad_file(tmp_path):
    """json.loads recursed out of the stack on a 100,000-deep array: a RecursionError, "a bug in shake"."""
    from engine.errors import BadDataFile

    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with DatasetStore(tmp_path, writable=False) as reader:
        with pytest.raises(BadDataFile, match="nested too deeply"):
            reader.load_state("deep")
