"""Rules that hold for every input (Hypothesis): the log-probability blob and the row survive their
on-disk forms unchanged, and alignment gives soft labels only where the bytes agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.store.schema import (Agent, ChatMessage, Chosen, Exclusion, LogprobRecord, LogprobSource, Origin, Prompt,
                                 Rejected, RejectedKind, Row)
from engine.teachers.base import ModelIdentity, SamplingParams
from engine.align import align
from engine.tokens import StudentVocab

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)


# -- the logprob blob (engine/logprobs.py) -------------------------------------------------------------
@st.composite
def token_logprobs(draw) -> TokenLogprobs:
    n = draw(st.integers(0, 12))
    k = draw(st.integers(0, 4))
    with_ids = draw(st.booleans())
    tokens = []
    for _ in range(n):
        alts = draw(st.lists(st.tuples(st.integers(-1, 50_000), st.binary(max_size=6), finite), max_size=k))
        tokens.append(TokenLogprob(draw(st.integers(0, 50_000)) if with_ids else -1, draw(st.binary(max_size=8)),
                                   draw(finite), [TopLogprob(i, b, lp) for i, b, lp in alts]))
    lp = TokenLogprobs.from_tokens(tokens)
    if lp.k < k:  # every row shorter than k: pad to k columns, as a teacher with top_logprobs = k writes them
        ids, lps = np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32)
        ids[:, : lp.k], lps[:, : lp.k] = lp.top_ids.reshape(n, lp.k), lp.top_logprobs.reshape(n, lp.k)
        lp.top_ids, lp.top_logprobs = ids, lps
        lp.top_bytes = [row + [b""] * (k - len(row)) for row in lp.top_bytes]
    return lp


@given(token_logprobs())
def test_the_logprob_blob_round_trips(lp):
    back = TokenLogprobs.from_npz_bytes(lp.to_npz_bytes())
    assert len(back) == len(lp) and back.k == lp.k and back.has_ids == lp.has_ids
    np.testing.assert_array_equal(back.token_ids, lp.token_ids)
    np.testing.assert_array_equal(back.logprobs, lp.logprobs)
    np.testing.assert_array_equal(back.top_ids, lp.top_ids)
    np.testing.assert_array_equal(back.top_logprobs, lp.top_logprobs)
    assert back.token_bytes == lp.token_bytes and back.top_bytes == lp.top_bytes
    assert back.to_npz_bytes() == lp.to_npz_bytes()  # the blob's name (its sha256) is stable


# -- the row (engine/store/schema.py through engine/store/codec.py and JSON text) ----------------------
text = st.text(max_size=20)
identities = st.builds(ModelIdentity, name=text, backend=text, model=text, digest=text, quantization=text)
samplings = st.builds(SamplingParams, temperature=finite, max_tokens=st.integers(0, 4096), top_p=finite,
                      top_k=st.integers(0, 100), seed=st.integers(-2**31, 2**31), top_logprobs=st.integers(0, 20))
prompts = st.builds(Prompt, messages=st.lists(st.builds(ChatMessage, role=text, content=text), max_size=3).map(tuple),
                    instruction=text, script=text)
records = st.builds(LogprobRecord, blob=text, n_tokens=st.integers(0, 10_000), k=st.integers(0, 20),
                    has_ids=st.booleans(), source=st.sampled_from(LogprobSource), scorer=identities,
                    prompt_sha=st.none() | text, constraint=text)
output_fields = dict(text=text, reasoning=text, script=text, agent=st.sampled_from(Agent),
                     teacher=st.none() | identities, sampling=st.none() | samplings, cycle=st.integers(0, 99),
                     created_at=text, origin=st.sampled_from(Origin), prompt_version=text, constraint=text)
rejecteds = st.builds(Rejected, kind=st.sampled_from(RejectedKind), error=st.none() | text,
                      feedback=st.none() | text, student_version=st.none() | text, **output_fields)
chosens = st.builds(Chosen, feedback=st.none() | text, logprobs=st.none() | records, **output_fields)
rows = st.builds(Row, row_id=text, session_id=text, agent=st.sampled_from(Agent), step_index=st.integers(-1, 99),
                 step=text, cycle=st.integers(0, 99), prompt=prompts, rejected=st.none() | rejecteds,
                 chosen=st.none() | chosens, created_at=text, updated_at=text,
                 excluded=st.none() | st.builds(Exclusion, reason=text, at=text))


@given(rows)
def test_a_row_round_trips_through_its_json_text(row):
    stored = json.dumps(row.to_json(), ensure_ascii=False)  # what the session file holds
    back = Row.from_json(json.loads(stored))
    assert back == row
    assert back.prompt.sha == row.prompt.sha and back.soft_labels_match_prompt == row.soft_labels_match_prompt


# -- alignment (engine/align.py) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def vocab(smol_tokenizer):
    return StudentVocab(smol_tokenizer)


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
code_text = st.text(alphabet=st.sampled_from(list("abcdefxyz _()=+:.,'\"\n\t0123456789") + ["é", "→", "日"]),
                    min_size=1, max_size=60)


@st.composite
def teacher_of(draw, text_value: str) -> TokenLogprobs:
    """Another tokenizer over `text_value`: its bytes cut anywhere (inside a UTF-8 character too), no ids,
    each token's top-1 its own bytes and the rest arbitrary pieces."""
    raw = text_value.encode()
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=len(raw))) | {0, len(raw)})
    tokens = []
    for a, b in zip(cuts, cuts[1:]):
        piece = raw[a:b]
        others = draw(st.lists(st.binary(min_size=1, max_size=4), max_size=2))
        tokens.append(TokenLogprob(-1, piece, -0.5, [TopLogprob(-1, piece, -0.5)]
                                   + [TopLogprob(-1, o, -2.0 - i) for i, o in enumerate(others)]))
    return TokenLogprobs.from_tokens(tokens)


@PROPERTY
@given(st.data(), code_text, st.booleans())
def test_masked_positions_get_soft_labels_only_where_the_teacher_spells_the_student_piece(
        smol_tokenizer, vocab, data, teacher_text, edited):
    student_text = data.draw(code_text) if edited else teacher_text  # an edited chosen, or the same text
    teacher = data.draw(teacher_of(teacher_text))
    student_ids = smol_tokenizer.encode(student_text, add_special_tokens=False)
    kd = align(teacher, student_ids, vocab)
    assert kd.mode == "bytes" and kd.mask.shape == (len(student_ids),)
    assert kd.ids.shape == kd.logps.shape == (len(student_ids), teacher.k)
    teacher_pieces = set(teacher.token_bytes)
    starts = {}
    pos = 0
    for piece in teacher.token_bytes:
        starts[pos] = piece
        pos += len(piece)
    s_pos = 0
    for i, sid in enumerate(student_ids):
        piece = vocab.pieces[sid]
        if kd.mask[i]:
            assert piece in teacher_pieces  # one teacher token covers exactly this student token's bytes
            if not edited:
                assert starts.get(s_pos) == piece  # ... at the same place in the text
            assert vocab.pieces[int(kd.ids[i, 0])] == piece  # the teacher's top-1 (its own token) as a student id
            alts = [int(a) for a in kd.ids[i] if a >= 0]
            assert len(set(alts)) == len(alts) and np.isfinite(kd.logps[i, :len(alts)]).all()
        else:
            assert (kd.ids[i] == -1).all() and np.isneginf(kd.logps[i]).all()
        s_pos += len(piece)


@PROPERTY
@given(code_text)
def test_a_teacher_without_ids_that_cuts_the_text_as_the_student_does_aligns_every_token(smol_tokenizer, vocab,
                                                                                          student_text):
    student_ids = smol_tokenizer.encode(student_text, add_special_tokens=False)
    pieces = [vocab.pieces[i] for i in student_ids]
    teacher = TokenLogprobs.from_tokens([TokenLogprob(-1, p, -0.2, [TopLogprob(-1, p, -0.2)]) for p in pieces])
    kd = align(teacher, student_ids, vocab)
    assert kd.mode == "bytes" and kd.aligned_share == 1.0
    assert [vocab.pieces[int(i)] for i in kd.ids[:, 0]] == pieces


@PROPERTY
@given(code_text, st.lists(st.integers(0, 49_151), min_size=0, max_size=3), st.integers(0, 3))
def test_the_same_tokenizer_uses_ids_and_aligns_every_token(smol_tokenizer, vocab, student_text, alt_ids, extra_k):
    student_ids = smol_tokenizer.encode(student_text, add_special_tokens=False)
    alt_ids = [a for a in alt_ids if a < vocab.size]
    tokens = [TokenLogprob(sid, vocab.pieces[sid], -0.1,
                           [TopLogprob(sid, vocab.pieces[sid], -0.1)]
                           + [TopLogprob(a, vocab.pieces[a], -1.0 - j) for j, a in enumerate(alt_ids[:extra_k])])
              for sid in student_ids]
    teacher = TokenLogprobs.from_tokens(tokens)
    kd = align(teacher, student_ids, vocab)
    assert kd.mode == "ids" and kd.aligned_share == 1.0 and kd.mask.all()
    np.testing.assert_array_equal(kd.ids, teacher.top_ids)
