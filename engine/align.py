"""Put the teacher's per-token log-probabilities onto the student's tokens.

Same tokenizer (checked, not assumed): the teacher's ids are the student's own tokenization of the
chosen text, and every id's bytes are the student's bytes for that id; then the top-k ids index the
student's vocabulary directly.

Otherwise (another tokenizer, a teacher without ids such as Ollama, an edited chosen), tokens are
aligned by byte offsets: the two byte strings are matched (difflib's matching blocks; identical text
is one block), and a student token gets the teacher's soft labels only when one teacher token covers
exactly the same bytes inside a matching block. Its top-k alternatives are mapped to student ids by
their bytes; alternatives the student cannot spell as one token fall into the tail bucket. Every other
student token is trained on its hard label, and so is every span the teacher's entries left
unlabelled (no finite alternative: `engine/teachers/entries.py`). The aligned share says how much of the
chosen text got soft labels.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
import numpy as np

from engine.logprobs import TokenLogprobs
from engine.teachers.entries import LOWEST_REAL_LOGPROB, real_alternative
from engine.tokens import StudentVocab


@dataclass
class AlignedKD:
    ids: np.ndarray  # int64 [n_student, k], -1 where no alternative
    logps: np.ndarray  # float32 [n_student, k], -inf where no alternative
    mask: np.ndarray  # bool [n_student]: this token has soft labels
    mode: str  # "ids" | "bytes"

    @property
    def aligned_share(self) -> float:
        return float(self.mask.mean()) if len(self.mask) else 0.0


def byte_spans(pieces: list[bytes]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for p in pieces:
        out.append((pos, pos + len(p)))
        pos += len(p)
    return out


def _same_tokenizer(teacher: TokenLogprobs, student_ids: list[int], vocab: StudentVocab) -> bool:
    if not teacher.has_ids or teacher.token_ids.tolist() != list(student_ids):
        return False
    top = teacher.top_ids[teacher.top_ids >= 0]
    if len(top) and int(top.max()) >= vocab.size:
        return False
    # Spot-check that ids spell the same bytes on both sides (different vocabularies can share ids).
    for i, tok in enumerate(teacher.token_ids.tolist()):
        if vocab.pieces[tok] != teacher.token_bytes[i]:
            return False
        for j in range(teacher.k):
            alt = int(teacher.top_ids[i, j])
            if alt >= 0 and teacher.top_bytes[i][j] and vocab.pieces[alt] != teacher.top_bytes[i][j]:
                return False
    return True


def align(teacher: TokenLogprobs, student_ids: list[int], vocab: StudentVocab) -> AlignedKD:
    n, k = len(student_ids), teacher.k
    if _same_tokenizer(teacher, student_ids, vocab):
        logps = teacher.top_logprobs.astype(np.float32)
        logps[logps <= LOWEST_REAL_LOGPROB] = -np.inf  # llama-server's log(0) is -FLT_MAX: no candidate, not a tiny one
        return AlignedKD(teacher.top_ids.astype(np.int64), logps, np.isfinite(logps).any(axis=1), "ids")
    ids = np.full((n, k), -1, dtype=np.int64)
    logps = np.full((n, k), -np.inf, dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    t_bytes = b"".join(teacher.token_bytes)
    s_pieces = [vocab.pieces[i] for i in student_ids]
    s_bytes = b"".join(s_pieces)
    matcher = difflib.SequenceMatcher(None, t_bytes, s_bytes, autojunk=False)
    t_spans = byte_spans(teacher.token_bytes)
    # teacher token by (start, end) in student coordinates, only when inside one matching block
    mapped: dict[tuple[int, int], int] = {}
    blocks = matcher.get_matching_blocks()
    bi = 0
    for ti, (ts, te) in enumerate(t_spans):
        while bi < len(blocks) and blocks[bi].a + blocks[bi].size < te:
            bi += 1
        if bi == len(blocks):
            break
        block = blocks[bi]
        if block.size and block.a <= ts and te <= block.a + block.size and te > ts:
            delta = block.b - block.a
            mapped[(ts + delta, te + delta)] = ti
    for si, span in enumerate(byte_spans(s_pieces)):
        ti = mapped.get(span)
        if ti is None:
            continue
        col = 0
        for j in range(k):
            lp = float(teacher.top_logprobs[ti, j])
            if not real_alternative(lp, teacher.top_bytes[ti][j]):
                continue
            sid = vocab.by_bytes.get(teacher.top_bytes[ti][j])
            if sid is None or sid in ids[si, :col]:
                continue  # not one student token: its mass stays in the tail bucket
            ids[si, col] = sid
            logps[si, col] = lp
            col += 1
        mask[si] = col > 0
    return AlignedKD(ids, logps, mask, "bytes")
