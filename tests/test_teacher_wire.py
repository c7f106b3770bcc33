"""What real servers send, and what the teachers record of it: soft labels only where they belong.

The stand-ins (`servers.py`) send the entries llama-server and Ollama really send for a model's tokens
(per sent text, held-back stop prefixes, split characters, rebuilt bytes, thinking); the property:
whatever the text, a generation's token bytes are exactly its text, and every token that carries soft
labels is one of the model's own tokens at that very place, with its own log-probability.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.agents import worker
from engine.config import TeacherConfig
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.base import SamplingParams
from engine.teachers.entries import is_unlabelled, spell
from engine.teachers.ollama_backend import OllamaTeacher
from engine.teachers.openai_compat import OpenAICompatTeacher
from servers import FLT_LOWEST, FakeOllama, FakeOpenAI, Script, ServerToken, expected_text, server_tokens

MESSAGES = worker.worker_messages("Print a goodbye message after the greeting.", 'print("hello")\n')
SAMPLING = SamplingParams(max_tokens=64, top_logprobs=4)
STOP = "<|im_end|>"


@pytest.fixture(scope="module")
def ollama():
    with FakeOllama() as server:
        yield server


@pytest.fixture(scope="module")
def llama_server():
    with FakeOpenAI() as server:
        yield server


def ollama_teacher(server, **kw) -> OllamaTeacher:
    return OllamaTeacher(TeacherConfig(name="olla", backend="ollama", host=server.url, model=server.model, **kw))


def openai_teacher(server, **kw) -> OpenAICompatTeacher:
    return OpenAICompatTeacher(TeacherConfig(name="srv", backend="openai", host=server.url, model=server.model, **kw))


def assert_labels_belong(gen, script: Script, *, thinking: bool = False) -> None:
    """The generation's bytes are its text, and each labelled token is the model's own token at that offset
    (`thinking`: the same of the reasoning's tokens and the thinking text)."""
    tokens, text, model_tokens = ((gen.thinking_tokens, gen.thinking, script.thinking or []) if thinking
                                  else (gen.tokens, gen.text, script.tokens))
    if tokens or not thinking:
        assert b"".join(t.token_bytes for t in tokens) == text.encode("utf-8")
    at, own = 0, {}
    for tok in model_tokens:
        own[at] = tok
        at += len(tok.piece)
    at = 0
    for tok in tokens:
        if tok.top:
            model = own.get(at)
            assert model is not None and model.piece == tok.token_bytes, f"labels at byte {at} are not one token's"
            assert tok.logprob == pytest.approx(model.logprob)
            alts = {(b, round(lp, 5)) for _, b, lp in model.alts}
            assert all((a.token_bytes, round(a.logprob, 5)) in alts for a in tok.top)
            assert all(a.token_bytes and a.logprob > -1e30 for a in tok.top)  # no "" and no log(0) candidates
        at += len(tok.token_bytes)


def run(server, teacher, script: Script, flavor: str | None = None):
    server.script = script
    if flavor:
        server.flavor = flavor
    try:
        return teacher.generate(MESSAGES, SAMPLING)
    finally:
        server.script = None


# -- the property over random UTF-8 text ------------------------------------------------------------
CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
PIECES = st.one_of(st.text(CHARS, min_size=1, max_size=6), st.sampled_from(["é", "日本", "🙂", "👩‍💻", " <|", "im_", STOP]))


@st.composite
def scripts(draw) -> Script:
    text = "".join(draw(st.lists(PIECES, min_size=1, max_size=8)))
    size = len(text.encode("utf-8"))
    cuts = draw(st.lists(st.integers(1, max(size - 1, 1)), max_size=size))
    return Script(server_tokens(text, cuts, sampled_in_top=draw(st.booleans())), stops=(STOP,))


FLAVORS = st.sampled_from(["ollama 0.12", "ollama 0.30", "llama-server"])


@st.composite
def thinking_scripts(draw) -> Script:
    """A thinking model's reasoning and answer, each random UTF-8 cut anywhere, in every way servers send it."""
    answer = draw(scripts())
    text = "".join(draw(st.lists(PIECES.filter(lambda p: p != STOP), min_size=1, max_size=6)))
    size = len(text.encode("utf-8"))
    cuts = draw(st.lists(st.integers(1, max(size - 1, 1)), max_size=size))
    return Script(answer.tokens, stops=answer.stops, thinking=server_tokens(text, cuts, start_id=5000, base=-0.9,
                                                                            sampled_in_top=draw(st.booleans())),
                  two_pass=draw(st.booleans()), crossing=draw(st.booleans()))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts(), flavor=FLAVORS)
def test_soft_labels_belong_to_the_text_they_are_stored_with(ollama, llama_server, script, flavor):
    if flavor == "llama-server":
        gen = run(llama_server, openai_teacher(llama_server), script)
    else:
        gen = run(ollama, ollama_teacher(ollama), script, flavor.split()[1])
    assert gen.text == expected_text(script)
    assert_labels_belong(gen, script)
    lp = gen.logprobs()
    if lp is not None:
        assert lp.spells(gen.text) and 0 <= lp.labelled_bytes() <= len(gen.text.encode())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from engine.store import DatasetStore

    with DatasetStore(tmp_path_factory.mktemp("wire-data")) as store:
        yield store


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=thinking_scripts(), flavor=FLAVORS)
def test_stored_thinking_rows_keep_answer_and_reasoning_labels_apart(ollama, llama_server, store, script, flavor):
    """Through the stand-ins and the store, as a session writes a chosen: the stored soft labels spell
    exactly the stored text, the reasoning's exactly the stored thinking, each labelled token is the
    model's own at its place, and no reasoning token labels the answer."""
    import records

    assume(expected_text(script))  # an answer cut to nothing by its stop string has no soft labels to store
    if flavor == "llama-server":
        teacher = openai_teacher(llama_server, think="on")
        gen = run(llama_server, teacher, script)
    else:
        teacher = ollama_teacher(ollama, think="on")
        gen = run(ollama, teacher, script, flavor.split()[1])
    assert gen.text == expected_text(script)
    assert gen.thinking == b"".join(t.piece for t in script.thinking).decode("utf-8")
    assert_labels_belong(gen, script)
    assert_labels_belong(gen, script, thinking=True)
    row = records.store_generation(store, gen, teacher)
    assert not row.chosen.soft_labels_refused and row.chosen.text == gen.text and row.chosen.thinking == gen.thinking
    stored = store.get_logprobs(row.chosen.logprobs.blob)
    assert b"".join(stored.token_bytes) == row.chosen.text.encode("utf-8")
    assert row.chosen.logprobs.thinking_blob, "the reasoning's soft labels were dropped"
    reasoning = store.get_logprobs(row.chosen.logprobs.thinking_blob)
    assert b"".join(reasoning.token_bytes) == row.chosen.thinking.encode("utf-8")
    assert len(reasoning) == row.chosen.logprobs.thinking_tokens


# -- each behaviour, one by one ---------------------------------------------------------------------
def test_ollama_bytes_are_read_not_the_json_token_text(ollama):
    """v0.12.11-0.24 send a piece of a character as token "\\ufffd" with the right `bytes`; the `ollama`
    client dropped `bytes` and recorded EF BF BD (fails on 0cf108c)."""
    script = Script(server_tokens("café", [4]))  # b"caf\xc3" | b"\xa9"
    gen = run(ollama, ollama_teacher(ollama), script, "0.12")
    assert [t.token_bytes for t in gen.tokens] == [b"caf\xc3", b"\xa9"]
    assert all(t.top for t in gen.tokens)


def test_llama_server_merged_entry_is_left_unlabelled(llama_server):
    """A possible stop prefix is held back and released inside the next token's entry, whose bytes cover
    both tokens and whose distribution is the last one's: that span carries no soft labels."""
    script = Script(server_tokens("ok <|x", [3, 5]), stops=(STOP,))  # "ok " | "<|" (held: prefix of STOP) | "x"
    gen = run(llama_server, openai_teacher(llama_server), script)
    assert gen.text == "ok <|x"
    assert [t.token_bytes for t in gen.tokens] == [b"ok ", b"<|x"]
    assert gen.tokens[0].top and is_unlabelled(gen.tokens[1])


def test_ollama_030_drops_held_back_chunks_and_their_span_is_unlabelled(ollama):
    script = Script(server_tokens("ok <|x", [3, 5]), stops=(STOP,))
    gen = run(ollama, ollama_teacher(ollama), script, "0.30")
    assert gen.text == "ok <|x" and [t.token_bytes for t in gen.tokens] == [b"ok ", b"<|x"]
    assert is_unlabelled(gen.tokens[1])


def test_split_character_on_llama_server_is_unlabelled_not_mislabelled(llama_server):
    """The first half of a character gets no entry; the next entry carries the whole character with only
    its own log-probability (server-context.cpp `process_token`)."""
    script = Script(server_tokens("a🙂b", [3, 5]))  # b"a\xf0\x9f" | b"\x99\x82" | b"b"
    gen = run(llama_server, openai_teacher(llama_server), script)
    assert gen.text == "a🙂b"
    assert_labels_belong(gen, script)
    assert [t.token_bytes for t in gen.tokens] == ["a🙂".encode(), b"b"]
    assert is_unlabelled(gen.tokens[0]) and gen.tokens[1].top  # the merged entry is no token's own


def test_zero_probability_and_empty_alternatives_are_not_candidates(ollama):
    script = Script(server_tokens("hello", [5]))
    gen = run(ollama, ollama_teacher(ollama), script, "0.30")
    assert [a.token_bytes for a in gen.tokens[0].top] == [b"hello", b" alt"]  # b"\xe2" arrived as "", zz at -3.4e38


def test_thinking_is_off_by_default_and_asked_for_when_on(ollama, llama_server):
    ollama_teacher(ollama).generate(MESSAGES, SAMPLING)
    assert ollama.requests[-1]["think"] is False
    ollama_teacher(ollama, think="on").generate(MESSAGES, SAMPLING)
    assert ollama.requests[-1]["think"] is True
    ollama_teacher(ollama, think="server").generate(MESSAGES, SAMPLING)
    assert "think" not in ollama.requests[-1]
    openai_teacher(llama_server).generate(MESSAGES, SAMPLING)
    assert llama_server.requests[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    openai_teacher(llama_server, think="server").generate(MESSAGES, SAMPLING)
    assert "chat_template_kwargs" not in llama_server.requests[-1]


@pytest.mark.parametrize("flavor", ["0.12", "0.30"])
def test_ollama_thinking_is_kept_apart_with_its_logprobs_out_of_the_answer(ollama, flavor):
    """Ollama streams the reasoning's logprobs (and the stripped `</think>` tag's, and with `format` the
    first pass's) next to the answer's: only the answer's label the answer (fails on 0cf108c: the thinking
    tokens were recorded as the answer's)."""
    script = Script(server_tokens("The answer.", [4]), thinking=server_tokens("Let me see.", [3], start_id=50),
                    two_pass=True)
    gen = run(ollama, ollama_teacher(ollama, think="on"), script, flavor)
    assert gen.thinking == "Let me see." and gen.text == "The answer."
    assert_labels_belong(gen, script)
    assert [t.token_bytes for t in gen.tokens] == [b"The ", b"answer."] and all(t.top for t in gen.tokens)
    assert_labels_belong(gen, script, thinking=True)
    assert [t.token_bytes for t in gen.thinking_tokens] == [b"Let", b" me see."] and all(t.top for t in gen.thinking_tokens)


def test_llama_server_reasoning_content_is_the_thinking(llama_server):
    script = Script(server_tokens("Done.", [2]), thinking=server_tokens("Hmm, fine.", [4], start_id=50))
    gen = run(llama_server, openai_teacher(llama_server, think="on"), script)
    assert gen.thinking == "Hmm, fine." and gen.text == "Done."
    assert_labels_belong(gen, script)
    assert b"".join(t.token_bytes for t in gen.tokens) == b"Done." and all(t.top for t in gen.tokens)
    assert_labels_belong(gen, script, thinking=True)
    assert [t.token_bytes for t in gen.thinking_tokens] == [b"Hmm,", b" fine."] and all(t.top for t in gen.thinking_tokens)


@pytest.mark.parametrize("flavor", ["0.12", "0.30"])
def test_ollama_chunk_crossing_the_closing_tag_is_split_exactly(ollama, flavor):
    """One chunk with the reasoning's last text and the answer's first, and the entries of both and of the
    tag: each side keeps its own tokens' labels (fails before: the reasoning's entries were dropped and
    the answer's head was unlabelled)."""
    script = Script(server_tokens("Yes, done.", [4]), thinking=server_tokens("So: é.", [3], start_id=50, base=-0.9),
                    crossing=True)
    gen = run(ollama, ollama_teacher(ollama, think="on"), script, flavor)
    assert gen.thinking == "So: é." and gen.text == "Yes, done."
    assert_labels_belong(gen, script)
    assert_labels_belong(gen, script, thinking=True)
    assert [t.token_bytes for t in gen.tokens] == [b"Yes,", b" done."] and all(t.top for t in gen.tokens)
    assert [t.token_bytes for t in gen.thinking_tokens] == [b"So:", " é.".encode()]
    assert all(t.top for t in gen.thinking_tokens)


def test_llama_server_result_crossing_the_closing_tag_labels_neither_side(llama_server):
    """llama-server's entry for a result that crosses the tag spells the reasoning's tail, the tag and the
    answer's head with the last token's distribution: it is no token's own, so no byte of the answer or
    the reasoning gets it."""
    script = Script(server_tokens("Yes, done.", [4]), thinking=server_tokens("So: é.", [3], start_id=50, base=-0.9),
                    crossing=True)
    gen = run(llama_server, openai_teacher(llama_server, think="on"), script)
    assert gen.thinking == "So: é." and gen.text == "Yes, done."
    assert_labels_belong(gen, script)
    assert_labels_belong(gen, script, thinking=True)
    assert is_unlabelled(gen.tokens[0]) and gen.tokens[0].token_bytes == b"Yes,"
    assert gen.tokens[1].top and gen.thinking_tokens[0].top and is_unlabelled(gen.thinking_tokens[-1])


def test_the_store_refuses_reasoning_labels_that_are_not_the_thinking(tmp_path):
    """Soft labels of a reasoning that is not the chosen's `thinking` are dropped when the row is written and
    the refusal is recorded and counted; the answer's, which spell the text, stay."""
    import records
    from dataclasses import replace
    from engine.session.calls import logprob_record
    from engine.store import DatasetStore
    from engine.store.schema import LogprobSource

    answer = TokenLogprobs.from_tokens(spell(b"ok", [TokenLogprob(-1, b"ok", -0.1, [TopLogprob(-1, b"ok", -0.1)])]))
    other = TokenLogprobs.from_tokens([TokenLogprob(-1, b"not it", -0.1, [TopLogprob(-1, b"not it", -0.1)])])
    with DatasetStore(tmp_path) as store:
        sid = store.create_session(records.state())
        record = logprob_record(store, answer, source=LogprobSource.GENERATION, scorer=records.TEACHER,
                                prompt_sha=records.PROMPT.sha, thinking=other)
        store.commit(sid, new_rows=[records.row(0, None, replace(records.chosen("ok", record), thinking="hmm"))])
        (row,) = store.rows(sid)
        assert row.chosen.logprobs is not None and row.chosen.logprobs.blob == record.blob
        assert row.chosen.logprobs.thinking_blob == "" and "thinking" in row.chosen.soft_labels_refused
        assert store.stats().soft_labels_refused == 1


def test_spell_fills_missing_entries_and_keeps_the_ones_in_place():
    own = [TokenLogprob(-1, b, -0.1, [TopLogprob(-1, b, -0.1)]) for b in (b"ab", b"\xef\xbf\xbd", b"cd")]
    out = spell("ab\u00e9cd".encode(), own)  # the middle entry is U+FFFD where the text has é
    assert [t.token_bytes for t in out] == [b"ab", "é".encode(), b"cd"]
    assert out[0].top and is_unlabelled(out[1]) and out[2].top
    assert math.isnan(out[1].logprob)
    lp = TokenLogprobs.from_tokens(out)
    assert lp.labelled.tolist() == [True, False, True] and lp.labelled_bytes() == 4
    assert lp.to_json()["logprobs"][1] is None


@pytest.mark.slow
def test_rows_from_the_real_llama_cpp_server_carry_soft_labels_that_spell_their_text(tmp_path, smol_server):
    """`python -m llama_cpp.server` (what runs here) on multi-byte text: the stored chosen's soft labels
    spell its text, and the store reports how much of it they cover."""
    import records
    from engine.store import DatasetStore
    from engine.teachers.base import Constraint

    # A grammar makes the small model write multi-byte characters it would not choose (so they come in
    # pieces of characters), around a free word of its own.
    forced = Constraint("wire@1", 'root ::= "Grüße, 日本語 " [a-z]+ " café 🙂👩‍💻 — done."', {})
    messages = [{"role": "user", "content": "Greet me in German and Japanese."}]
    teacher = OpenAICompatTeacher(TeacherConfig(name="srv", backend="openai", host=smol_server, model="smol"))
    gen = teacher.generate(messages, SamplingParams(temperature=0.0, max_tokens=64, top_logprobs=3),
                           constraint=forced)
    # llama-cpp-python 0.3.36 decodes each token's piece with errors="ignore" for the streamed content too, so
    # characters split across tokens are lost from the text itself ("日本語" arrives as "本"); what it did
    # send must still be exactly what the soft labels spell.
    assert gen.text.startswith("Grüße, ") and "café" in gen.text, gen.text
    with DatasetStore(tmp_path) as store:
        row = records.store_generation(store, gen, teacher)
        stats = store.stats()
        stored = store.get_logprobs(row.chosen.logprobs.blob)
    assert not row.chosen.soft_labels_refused and stored.spells(row.chosen.text)
    assert stats.chosen_bytes == len(gen.text.encode()) and 0 < stats.labelled_bytes <= stats.chosen_bytes
