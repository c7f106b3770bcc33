"""Teacher backends: the embedded model for real, llama_cpp.server on loopback, and an Ollama-shaped server."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.agents import worker
from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, ModelNotFound, ScoringUnsupported, TeacherError, TeacherUnavailable
from engine.teachers.base import SamplingParams
from engine.teachers.embedded import EmbeddedTeacher
from engine.teachers.ollama_backend import OllamaTeacher
from engine.teachers.openai_compat import OpenAICompatTeacher
from servers import FakeOllama, free_port

MESSAGES = worker.worker_messages("Print a goodbye message after the greeting.", 'print("hello")\n')


@pytest.fixture(scope="module")
def smol():
    return EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=5))


@pytest.mark.slow
def test_embedded_generation_records_ids_bytes_logprobs_and_top_k(smol):
    gen = smol.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=60, top_logprobs=5))
    assert gen.text and gen.tokens
    assert b"".join(t.token_bytes for t in gen.tokens).decode() == gen.text
    for tok in gen.tokens:
        assert tok.token_id >= 0 and tok.logprob <= 0 and len(tok.top) == 5
        assert tok.top[0].logprob >= tok.top[-1].logprob
        # greedy decoding takes the most likely token
        assert tok.token_id == tok.top[0].token_id
    assert gen.identity.quantization == "Q4_1" and gen.identity.digest
    lp = gen.logprobs()
    assert lp.has_ids and lp.k == 5


@pytest.mark.slow
def test_embedded_score_agrees_with_generation(smol):
    gen = smol.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=60, top_logprobs=5))
    scored = smol.score(MESSAGES, gen.text, top_logprobs=5)
    assert scored.token_ids.tolist() == [t.token_id for t in gen.tokens]
    diff = np.abs(scored.logprobs - np.array([t.logprob for t in gen.tokens], dtype=np.float32))
    # llama.cpp's batched kernels round differently from single-token decoding (see README)
    assert diff.mean() < 0.08 and diff.max() < 0.5
    assert (scored.top_ids[:, 0] == np.array([t.top[0].token_id for t in gen.tokens])).mean() > 0.9


@pytest.mark.slow
def test_embedded_sampling_is_seeded(smol):
    sp = SamplingParams(temperature=0.8, max_tokens=20, seed=7, top_logprobs=0)
    assert smol.generate(MESSAGES, sp).text == smol.generate(MESSAGES, sp).text


@pytest.mark.slow
def test_embedded_cancel_and_context_overflow(smol):
    cancel = threading.Event()
    with pytest.raises(GenerationCancelled):
        smol.generate(MESSAGES, SamplingParams(max_tokens=50), on_token=lambda t: cancel.set(), cancel=cancel)
    small = EmbeddedTeacher(TeacherConfig(name="tiny", n_ctx=64))
    with pytest.raises(TeacherError, match="more than n_ctx=64"):
        small.generate(MESSAGES, SamplingParams(max_tokens=5))


def test_embedded_missing_model_file(tmp_path):
    with pytest.raises(TeacherError, match="no GGUF file"):
        EmbeddedTeacher(TeacherConfig(name="x", model=str(tmp_path / "missing.gguf")))


@pytest.mark.slow
def test_openai_backend_against_a_real_llama_cpp_server(smol_server):
    url = smol_server
    teacher = OpenAICompatTeacher(TeacherConfig(name="srv", backend="openai", host=url, model="smol"))
    teacher.health()
    streamed = []
    gen = teacher.generate(MESSAGES, SamplingParams(temperature=0.0, max_tokens=20, top_logprobs=3), on_token=streamed.append)
    assert gen.text and "".join(streamed) == gen.text
    assert b"".join(t.token_bytes for t in gen.tokens) == gen.text.encode()
    # llama-cpp-python keys alternatives by decoded text: pieces of a character come out "" (not a
    # candidate: dropped) and equal texts collapse, so a token may keep fewer than 3
    assert len(gen.tokens) > 0 and all(1 <= len(t.top) <= 3 for t in gen.tokens)
    assert all(a.token_bytes for t in gen.tokens for a in t.top)
    assert all(t.logprob <= 0 for t in gen.tokens)
    missing = OpenAICompatTeacher(TeacherConfig(name="srv", backend="openai", host=url, model="nope"))
    with pytest.raises(ModelNotFound, match="has no model 'nope'"):
        missing.health()
    with pytest.raises(ScoringUnsupported):
        teacher.score(MESSAGES, "x", top_logprobs=1)


def test_openai_backend_unreachable_server():
    teacher = OpenAICompatTeacher(
        TeacherConfig(name="srv", backend="openai", host=f"http://127.0.0.1:{free_port()}", model="m", connect_timeout_s=1)
    )
    with pytest.raises(TeacherUnavailable, match="not reachable"):
        teacher.generate(MESSAGES, SamplingParams(max_tokens=5))


def ollama_teacher(url, model="qwen2.5-coder:7b", **kw):
    return OllamaTeacher(TeacherConfig(name="olla", backend="ollama", host=url, model=model, n_ctx=8192, **kw))


def test_ollama_backend_streams_text_and_logprobs():
    with FakeOllama() as server:
        teacher = ollama_teacher(server.url)
        teacher.health()
        assert teacher.identity.quantization == "Q4_K_M" and teacher.identity.digest == "sha256:abc123"
        pieces = []
        gen = teacher.generate(MESSAGES, SamplingParams(max_tokens=10, top_logprobs=2), on_token=pieces.append)
        assert gen.text == "Hello world" and pieces == ["Hel", "lo", " world"]
        assert [t.token_bytes for t in gen.tokens] == [b"Hel", b"lo", b" world"]
        assert [t.token_id for t in gen.tokens] == [-1, -1, -1]
        assert gen.tokens[1].logprob == pytest.approx(-0.2) and len(gen.tokens[1].top) == 2
        request = server.requests[-1]
        assert request["logprobs"] is True and request["top_logprobs"] == 2
        assert request["options"]["num_ctx"] == 8192


def test_ollama_missing_model_unreachable_and_mid_stream_error():
    with FakeOllama() as server:
        with pytest.raises(ModelNotFound, match="ollama pull nope"):
            ollama_teacher(server.url, model="nope").health()
        with pytest.raises(ModelNotFound):
            ollama_teacher(server.url, model="nope").generate(MESSAGES, SamplingParams(max_tokens=5))
        server.mode = "error_mid_stream"
        with pytest.raises(TeacherError, match="error was encountered"):
            ollama_teacher(server.url).generate(MESSAGES, SamplingParams(max_tokens=5))
        server.mode = "ok"
        assert ollama_teacher(server.url).generate(MESSAGES, SamplingParams(max_tokens=5)).text == "Hello world"
    with pytest.raises(TeacherUnavailable, match="not reachable"):
        ollama_teacher(f"http://127.0.0.1:{free_port()}", connect_timeout_s=1).health()
    with pytest.raises(ScoringUnsupported):
        ollama_teacher("http://127.0.0.1:1").score(MESSAGES, "x", top_logprobs=1)
