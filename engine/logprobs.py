"""Per-token log-probabilities of a teacher's output, and their compact on-disk form.

A `TokenLogprobs` holds, for each token of a response: its id (or -1 where the backend has no ids,
such as Ollama), its bytes, its log-probability, and the top-k alternatives (ids, bytes,
log-probabilities, padded with id -1 and -inf). The arrays go to disk as one `.npz` file
(`allow_pickle=False`): thousands of numbers per row must not live inside the JSON document that
the store rewrites on every insert.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TopLogprob:
    token_id: int
    token_bytes: bytes
    logprob: float


@dataclass
class TokenLogprob:
    token_id: int  # -1 where the backend does not expose ids
    token_bytes: bytes
    logprob: float
    top: list[TopLogprob] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.token_bytes.decode("utf-8", errors="replace")


def _pack_bytes(items: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in items], dtype=np.int64)
    flat = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
    return flat, offsets


def _unpack_bytes(flat: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    raw = flat.tobytes()
    return [raw[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


@dataclass
class TokenLogprobs:
    """Column form of a response's token log-probabilities (what the store and trainer use)."""

    token_ids: np.ndarray  # int64 [n]
    logprobs: np.ndarray  # float32 [n]
    token_bytes: list[bytes]  # n
    top_ids: np.ndarray  # int64 [n, k], -1 padded
    top_logprobs: np.ndarray  # float32 [n, k], -inf padded
    top_bytes: list[list[bytes]]  # n lists of k (b"" for padding)

    def __len__(self) -> int:
        return len(self.token_bytes)

    @property
    def k(self) -> int:
        return int(self.top_ids.shape[1]) if self.top_ids.ndim == 2 else 0

    @property
    def has_ids(self) -> bool:
        return bool(len(self)) and bool((self.token_ids >= 0).all())

    @property
    def text(self) -> str:
        return b"".join(self.token_bytes).decode("utf-8", errors="replace")

    @property
    def labelled(self) -> np.ndarray:
        """bool [n]: the token carries soft labels (a finite alternative). The spans a server's entries
        could not be trusted for are kept with no alternatives (`engine/teachers/entries.py`)."""
        if not self.k:
            return np.zeros(len(self), dtype=bool)
        return np.isfinite(self.top_logprobs).any(axis=1)

    def labelled_bytes(self) -> int:
        """How many bytes of the text carry soft labels."""
        return sum(len(b) for b, ok in zip(self.token_bytes, self.labelled.tolist()) if ok)

    def spells(self, text: str) -> bool:
        """The tokens' bytes are exactly `text`: the soft labels belong to this text and no other."""
        return b"".join(self.token_bytes) == text.encode("utf-8")

    @classmethod
    def from_tokens(cls, tokens: list[TokenLogprob]) -> TokenLogprobs:
        n = len(tokens)
        k = max((len(t.top) for t in tokens), default=0)
        top_ids = np.full((n, k), -1, dtype=np.int64)
        top_lps = np.full((n, k), -np.inf, dtype=np.float32)
        top_bytes: list[list[bytes]] = []
        for i, tok in enumerate(tokens):
            row = [b""] * k
            for j, alt in enumerate(tok.top):
                top_ids[i, j] = alt.token_id
                top_lps[i, j] = alt.logprob
                row[j] = alt.token_bytes
            top_bytes.append(row)
        return cls(
            token_ids=np.array([t.token_id for t in tokens], dtype=np.int64),
            logprobs=np.array([t.logprob for t in tokens], dtype=np.float32),
            token_bytes=[t.token_bytes for t in tokens],
            top_ids=top_ids,
            top_logprobs=top_lps,
            top_bytes=top_bytes,
        )

    def to_tokens(self) -> list[TokenLogprob]:
        out = []
        for i in range(len(self)):
            top = [
                TopLogprob(int(self.top_ids[i, j]), self.top_bytes[i][j], float(self.top_logprobs[i, j]))
                for j in range(self.k)
                if np.isfinite(self.top_logprobs[i, j])
            ]
            out.append(TokenLogprob(int(self.token_ids[i]), self.token_bytes[i], float(self.logprobs[i]), top))
        return out

    def to_npz_bytes(self) -> bytes:
        tok_flat, tok_off = _pack_bytes(self.token_bytes)
        top_flat, top_off = _pack_bytes([b for row in self.top_bytes for b in row])
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            token_ids=self.token_ids,
            logprobs=self.logprobs,
            token_bytes=tok_flat,
            token_offsets=tok_off,
            top_ids=self.top_ids,
            top_logprobs=self.top_logprobs,
            top_bytes=top_flat,
            top_offsets=top_off,
        )
        return buf.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> TokenLogprobs:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            token_bytes = _unpack_bytes(z["token_bytes"], z["token_offsets"])
            top_ids = z["top_ids"]
            flat_top = _unpack_bytes(z["top_bytes"], z["top_offsets"])
            k = top_ids.shape[1] if top_ids.ndim == 2 else 0
            top_bytes = [flat_top[i * k : (i + 1) * k] for i in range(len(token_bytes))]
            return cls(
                token_ids=z["token_ids"],
                logprobs=z["logprobs"],
                token_bytes=token_bytes,
                top_ids=top_ids,
                top_logprobs=z["top_logprobs"],
                top_bytes=top_bytes,
            )

    def to_json(self) -> dict:
        """JSON-safe form for exports: -inf padding becomes null, bytes become hex."""
        return {
            "token_ids": self.token_ids.tolist(),
            "tokens": [b.decode("utf-8", errors="replace") for b in self.token_bytes],
            "token_bytes_hex": [b.hex() for b in self.token_bytes],
            "logprobs": [float(x) if np.isfinite(x) else None for x in self.logprobs],  # nan: an unlabelled span
            "top_ids": self.top_ids.tolist(),
            "top_logprobs": [[float(x) if np.isfinite(x) else None for x in row] for row in self.top_logprobs],
        }
