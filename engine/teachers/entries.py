"""A server's log-probability entries, made to spell exactly the text they are stored with.

Servers do not send one clean entry per token (shared/notes/teacher-wire-audit.md A2-A4, B7):

- llama-server streams one entry per *sent text*: a token that ends inside a UTF-8 character gets no
  entry, and a token held back as a possible stop-string prefix is released later inside the next
  token's entry, whose bytes then cover the whole span while its distribution is the last token's
  (llama.cpp `tools/server/server-context.cpp` `process_token`, `server-task.cpp`
  `probs_vector_to_json`). Ollama >= 0.30 forwards those entries and drops the held-back ones with
  their log-probabilities (`llm/llama_server.go`); its alternatives are rebuilt from UTF-8-truncated
  text, so byte-fallback alternatives arrive as `""` (`server/logprob.go`).
- llama-cpp-python decodes pieces with `errors="ignore"`: the pieces of a multi-byte character come
  out empty (`llama.py`).
- `logarithm(0)` is `-FLT_MAX` (-3.4e38), not -inf (`server-task.cpp` `completion_token_output`).
- Thinking models put log-probabilities of the reasoning and of parser-stripped tags next to the
  answer's (Ollama `server/routes.go` chat handler; llama-server `delta.reasoning_content`), and one
  Ollama chunk can carry the reasoning's last text and the answer's first (`thinking/parser.go`
  `AddContent` returns both halves of a text that crosses the closing tag).

`spell(text, entries)` keeps an entry's soft labels only where the entry is provably one token's own:
one of its alternatives is that very token (same id where the server sends ids, same bytes, same
log-probability; llama.cpp and Ollama both list the sampled token among the alternatives when it is in
the top-k). Every other span of the text is kept as an *unlabelled* entry: its bytes, id -1, an unknown
log-probability (nan) and no alternatives. So the entries' bytes always equal the text, and alignment
and KD skip the unlabelled spans (no finite alternative: `TokenLogprobs.labelled`).
"""

from __future__ import annotations

import difflib
import math

from engine.logprobs import TokenLogprob

# llama-server's log of a zero probability is -FLT_MAX; anything this low is "impossible", not a candidate.
LOWEST_REAL_LOGPROB = -1e30
SAME_LOGPROB = 1e-4  # the sampled token and its alternative come from the same float32 array


def real_alternative(logprob: float, token_bytes: bytes) -> bool:
    """An alternative worth a soft label: a known spelling and a probability that did not underflow."""
    return bool(token_bytes) and math.isfinite(logprob) and logprob > LOWEST_REAL_LOGPROB


def unlabelled(span: bytes) -> TokenLogprob:
    """A span of the text that carries no soft labels (its entries were missing, merged or unverifiable)."""
    return TokenLogprob(-1, bytes(span), math.nan, [])


def own_token(entry: TokenLogprob) -> bool:
    """The entry is one token's own: the sampled token is among its alternatives with the same bytes and
    log-probability (and id, where ids are known). A merged entry (bytes of several tokens, the last one's
    distribution) fails this: the last token's own alternative spells fewer bytes."""
    for alt in entry.top:
        if (alt.token_bytes == entry.token_bytes and abs(alt.logprob - entry.logprob) <= SAME_LOGPROB
                and (entry.token_id < 0 or alt.token_id < 0 or alt.token_id == entry.token_id)):
            return True
    return False


def checked(entry: TokenLogprob, *, per_token: bool = False) -> TokenLogprob:
    """The entry with its unusable alternatives dropped, or unlabelled when it is not one token's own
    (`per_token`: the backend made it from one token itself, as the embedded one does)."""
    if not entry.top:
        return entry  # no alternatives asked for: nothing to label, nothing to verify
    if not per_token and not own_token(entry):
        return unlabelled(entry.token_bytes)
    top = [alt for alt in entry.top if real_alternative(alt.logprob, alt.token_bytes)]
    return TokenLogprob(entry.token_id, entry.token_bytes, entry.logprob, top) if top else unlabelled(entry.token_bytes)


def spell(text: bytes, entries: list[TokenLogprob], *, per_token: bool = False) -> list[TokenLogprob]:
    """Entries whose bytes are exactly `text`: checked entries where they match the text in place, and
    unlabelled spans for every byte no checked entry covers (missing or differently spelled entries)."""
    entries = [checked(e, per_token=per_token) for e in entries if e.token_bytes]
    joined = b"".join(e.token_bytes for e in entries)
    if joined == text:
        return _merge_unlabelled(entries)
    # Entries that lie whole inside a run of bytes both sides share keep their place; the rest is unlabelled.
    blocks = difflib.SequenceMatcher(None, joined, text, autojunk=False).get_matching_blocks()
    kept: list[tuple[int, TokenLogprob]] = []
    pos, bi = 0, 0
    for entry in entries:
        start, end = pos, pos + len(entry.token_bytes)
        pos = end
        while bi < len(blocks) and blocks[bi].a + blocks[bi].size < end:
            bi += 1
        if bi < len(blocks) and blocks[bi].size and blocks[bi].a <= start:
            kept.append((start + blocks[bi].b - blocks[bi].a, entry))
    out: list[TokenLogprob] = []
    at = 0
    for where, entry in kept:
        if where > at:
            out.append(unlabelled(text[at:where]))
        out.append(entry)
        at = where + len(entry.token_bytes)
    if at < len(text):
        out.append(unlabelled(text[at:]))
    return _merge_unlabelled(out)


def _merge_unlabelled(entries: list[TokenLogprob]) -> list[TokenLogprob]:
    """Neighbouring unlabelled spans as one: they say the same thing (no soft labels here)."""
    out: list[TokenLogprob] = []
    for entry in entries:
        if out and is_unlabelled(entry) and is_unlabelled(out[-1]):
            out[-1] = unlabelled(out[-1].token_bytes + entry.token_bytes)
        else:
            out.append(entry)
    return out


def is_unlabelled(entry: TokenLogprob) -> bool:
    return entry.token_id < 0 and not entry.top and math.isnan(entry.logprob)


def split_at(entries: list[TokenLogprob], boundary: int) -> tuple[list[TokenLogprob], list[TokenLogprob]]:
    """Entries that spell some bytes, cut at byte `boundary`: those before it, those after. An entry that
    crosses it is no token of either side's own: both of its pieces are unlabelled."""
    before: list[TokenLogprob] = []
    after: list[TokenLogprob] = []
    at = 0
    for entry in entries:
        start, end = at, at + len(entry.token_bytes)
        at = end
        if end <= boundary:
            before.append(entry)
        elif start >= boundary:
            after.append(entry)
        else:
            before.append(unlabelled(entry.token_bytes[: boundary - start]))
            after.append(unlabelled(entry.token_bytes[boundary - start:]))
    return _merge_unlabelled(before), _merge_unlabelled(after)


class Transcript:
    """What a stream said, chunk by chunk: the answer, a thinking model's reasoning, and the entries of
    each spelled exactly (`spell` per chunk, so an entry can only ever label text of its own chunk).

    The log-probabilities are split between reasoning and answer: a chunk's entries are spelled against
    its own `thinking + content` and cut where the answer begins (`split_at`), so the reasoning's entries
    spell exactly `thinking` and the answer's exactly `text`, and an entry that crosses from one into
    the other labels neither. Entries of a chunk with no text at all belong to no stored text and are
    left out: tags the server's reasoning parser removed, tokens a server sent with empty content."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.thinking_parts: list[str] = []
        self._tokens: list[TokenLogprob] = []
        self._thinking_tokens: list[TokenLogprob] = []
        self._any_entries = False

    def add(self, content: str, thinking: str, entries: list[TokenLogprob]) -> None:
        self._any_entries = self._any_entries or bool(entries)
        said, answer = thinking.encode("utf-8"), content.encode("utf-8")
        if not said and not answer:
            return
        reasoning, answering = split_at(spell(said + answer, entries), len(said))
        if said:
            self.thinking_parts.append(thinking)
            self._thinking_tokens += reasoning
        if answer:
            self.parts.append(content)
            self._tokens += answering

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def thinking(self) -> str:
        return "".join(self.thinking_parts)

    @property
    def tokens(self) -> list[TokenLogprob]:
        """The answer's entries (bytes exactly `text`), or none when the server sent no log-probabilities."""
        return _merge_unlabelled(self._tokens) if self._any_entries else []

    @property
    def thinking_tokens(self) -> list[TokenLogprob]:
        """The reasoning's entries (bytes exactly `thinking`), or none when there is no reasoning or the
        server sent no log-probabilities."""
        return _merge_unlabelled(self._thinking_tokens) if self._any_entries else []
