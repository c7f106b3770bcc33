"""Teacher tokens onto student tokens: same tokenizer, another tokenizer, an edited chosen."""

from __future__ import annotations

import numpy as np
import pytest

from engine.agents import worker
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.align import StudentVocab, align

MESSAGES = worker.worker_messages("Add a goodbye line.", 'print("hello")\n')
TEXT = 'REASONING: I add a second print.\n```python\nprint("hello")\nprint("goodbye")\n```\n'


@pytest.fixture(scope="module")
def vocab(smol_tokenizer):
    return StudentVocab(smol_tokenizer)


def test_student_vocab_spells_its_own_tokens(smol_tokenizer, vocab):
    ids = smol_tokenizer.encode(TEXT, add_special_tokens=False)
    assert b"".join(vocab.pieces[i] for i in ids) == TEXT.encode()


@pytest.mark.slow
def test_same_tokenizer_uses_teacher_ids_directly(smol_tokenizer, smol_teacher, vocab):
    scored = smol_teacher.score(MESSAGES, TEXT, top_logprobs=8)
    student_ids = smol_tokenizer.encode(TEXT, add_special_tokens=False)
    kd = align(scored, student_ids, vocab)
    assert kd.mode == "ids" and kd.aligned_share == 1.0
    np.testing.assert_array_equal(kd.ids, scored.top_ids)


def word_tokens(text: str) -> TokenLogprobs:
    """Another tokenizer: whole words (with their leading space) and single symbols, no ids (like Ollama)."""
    import re

    pieces = re.findall(r" ?[A-Za-z]+|\n|.", text)
    tokens = []
    for p in pieces:
        b = p.encode()
        tokens.append(TokenLogprob(-1, b, -0.3, [TopLogprob(-1, b, -0.3), TopLogprob(-1, b" xyzzyq", -2.0)]))
    return TokenLogprobs.from_tokens(tokens)


def test_different_tokenizer_aligns_by_bytes(smol_tokenizer, vocab):
    teacher = word_tokens(TEXT)
    student_ids = smol_tokenizer.encode(TEXT, add_special_tokens=False)
    kd = align(teacher, student_ids, vocab)
    assert kd.mode == "bytes" and 0.3 < kd.aligned_share < 1.0
    teacher_pieces = set(teacher.token_bytes)
    for i, sid in enumerate(student_ids):
        if kd.mask[i]:
            assert vocab.pieces[sid] in teacher_pieces
            assert kd.ids[i, 0] == sid  # the teacher's own token, mapped to the student's id
            assert kd.ids[i, 1] == -1  # " xyzzyq" is not one student token: its mass stays in the tail


@pytest.mark.slow
def test_edited_chosen_gets_soft_labels_only_where_text_matches(smol_tokenizer, smol_teacher, vocab):
    scored = smol_teacher.score(MESSAGES, TEXT, top_logprobs=8)
    edited = TEXT.replace('print("goodbye")', 'print("farewell, friend")')
    student_ids = smol_tokenizer.encode(edited, add_special_tokens=False)
    kd = align(scored, student_ids, vocab)
    assert kd.mode == "bytes" and 0.6 < kd.aligned_share < 1.0
    spans, pos = [], 0
    for sid in student_ids:
        piece = vocab.pieces[sid]
        spans.append((pos, pos + len(piece), piece))
        pos += len(piece)
    start = edited.encode().index(b"farewell")
    for (a, b, piece), ok in zip(spans, kd.mask):
        if a >= start and b <= start + len(b"farewell, friend"):
            assert not ok, piece  # edited text: hard labels only
    assert kd.mask[0]  # the untouched start keeps its soft labels
