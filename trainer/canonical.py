"""How many of the teacher's chosen tokens are not the student tokenizer's own (canonical) pieces.

A grammar that forces fixed words (`REASONING:`) lets the teacher spell them in pieces its tokenizer
would never choose for that text (`R|EA|S|ON|ING` where SmolLM2 writes `RE|AS|ON|ING`). Those tokens
and their soft labels are unnatural: the student is taught a distribution at a place it never is in
when it reads or writes the text itself. This measures it, so answer formats can be compared by how
canonically their fixed words come out: a teacher token counts as canonical when its byte span is
exactly one token of the student's tokenization of the chosen text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from engine.logprobs import TokenLogprobs
from engine.store.schema import distinct_chosens
from engine.store.store import DatasetStore
from engine.tokens import StudentVocab
from engine.align import byte_spans


@dataclass
class CanonicalReport:
    chosens: int = 0  # chosens with soft labels that were measured
    tokens: int = 0  # their teacher tokens
    non_canonical: int = 0  # of those, the tokens whose span is not one student token
    pieces: Counter = field(default_factory=Counter)  # the non-canonical pieces, by their text

    @property
    def share(self) -> float:
        return self.non_canonical / self.tokens if self.tokens else 0.0


def non_canonical_tokens(teacher: TokenLogprobs, text: str, tokenizer, vocab: StudentVocab) -> list[int]:
    """The indices of the teacher's tokens whose byte span is not one token of the student's own
    tokenization of `text`."""
    canonical = set(byte_spans([vocab.pieces[i] for i in tokenizer.encode(text, add_special_tokens=False)]))
    return [i for i, span in enumerate(byte_spans(teacher.token_bytes)) if span not in canonical]


def measure(store: DatasetStore, tokenizer) -> CanonicalReport:
    """Over every distinct chosen with soft labels in the dataset."""
    vocab = StudentVocab(tokenizer)
    report = CanonicalReport()
    for chosen in distinct_chosens(store.rows()):
        if chosen.logprobs is None:
            continue
        teacher = store.get_logprobs(chosen.logprobs.blob)
        odd = non_canonical_tokens(teacher, chosen.text, tokenizer, vocab)
        report.chosens += 1
        report.tokens += len(teacher)
        report.non_canonical += len(odd)
        report.pieces.update(teacher.token_bytes[i].decode("utf-8", errors="replace") for i in odd)
    return report
