"""The bytes each token of a Hugging Face tokenizer spells (byte-level BPE and SentencePiece alike).

Teachers report tokens as bytes; a student tokenizer reports strings in its own encoding (GPT-2's
printable-unicode alphabet, or SentencePiece's `▁` and `<0xNN>`). This maps every id to its bytes
and back, for aligning teachers to students and for the student's own logprob records.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-unicode ↔ byte table, inverted (byte-level BPE vocabularies use it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class StudentVocab:
    """The bytes each student token id spells, and the reverse map."""

    def __init__(self, tokenizer) -> None:
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        pieces: list[bytes] = [b""] * size
        byte_level = any(tok.startswith("Ġ") for tok in list(vocab)[:5000])
        decoder = _byte_decoder()
        special = set(getattr(tokenizer, "all_special_tokens", []))
        for token, idx in vocab.items():
            if token in special:
                pieces[idx] = token.encode("utf-8")
            elif byte_level and all(ch in decoder for ch in token):
                pieces[idx] = bytes(decoder[ch] for ch in token)
            elif token.startswith("<0x") and token.endswith(">") and len(token) == 6:
                pieces[idx] = bytes([int(token[3:5], 16)])
            else:
                pieces[idx] = token.replace("▁", " ").encode("utf-8")
        self.pieces = pieces
        self.size = size
        self.by_bytes: dict[bytes, int] = {}
        for idx, piece in enumerate(pieces):
            if piece and piece not in self.by_bytes:
                self.by_bytes[piece] = idx
