"""Constrained answers over the wire: the request shapes Ollama and OpenAI-compatible servers take (loopback
stand-ins), and llama.cpp's own server holding an answer to its grammar (started for real on loopback)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.agents.call import generate
from engine.agents.parsing import parse_analyzer_output, parse_worker_output
from engine.config import TeacherConfig
from engine.prompts import DEFAULT_BOOK
from engine.teachers.base import SamplingParams
from engine.teachers.embedded import EmbeddedTeacher
from engine.teachers.sampling import log_softmax
from engine.teachers.ollama_backend import OllamaTeacher
from engine.teachers.openai_compat import OpenAICompatTeacher
from servers import FakeOllama, FakeOpenAI

CALL = DEFAULT_BOOK.worker("Print bye after hello.", "Print bye after hello.", None, 'print("hello")\n')
JSON_ANSWER = json.dumps({"reasoning": "one more line", "script": 'print("hello")\nprint("bye")\n'})


def test_ollama_gets_the_json_schema_as_format_and_the_json_form_of_the_prompt():
    with FakeOllama(reply=[JSON_ANSWER[:20], JSON_ANSWER[20:]]) as server:
        teacher = OllamaTeacher(TeacherConfig(name="q", backend="ollama", host=server.url, model="qwen2.5-coder:7b"))
        assert teacher.answer_form == "json"
        gen = generate(teacher, CALL, SamplingParams(max_tokens=100, top_logprobs=2))
        request = server.requests[-1]
        assert request["format"] == CALL.constraint().json_schema
        assert request["format"]["required"] == ["script", "reasoning"]  # worker@2: the script first
        assert "JSON object" in request["messages"][0]["content"]
        assert request["logprobs"] is True and request["top_logprobs"] == 2  # still captured
        assert gen.constraint == "worker@2" and gen.prompt_version == CALL.version and gen.tokens
        assert parse_worker_output(gen.text).script == 'print("hello")\nprint("bye")\n'


def test_ollama_unconstrained_sends_no_format():
    with FakeOllama() as server:
        teacher = OllamaTeacher(TeacherConfig(name="q", backend="ollama", host=server.url, model="qwen2.5-coder:7b",
                                              constrain="off"))
        gen = generate(teacher, CALL, SamplingParams(max_tokens=10))
        assert "format" not in server.requests[-1] or not server.requests[-1]["format"]
        assert gen.constraint is None and "```python" in server.requests[-1]["messages"][0]["content"]


@pytest.mark.parametrize("constrain", ["grammar", "json", "off"])
def test_openai_compatible_request_shapes(constrain):
    with FakeOpenAI() as server:
        teacher = OpenAICompatTeacher(TeacherConfig(name="s", backend="openai", host=server.url, model="m",
                                                    constrain=constrain))
        gen = generate(teacher, CALL, SamplingParams(max_tokens=10, top_logprobs=1))
        request = server.requests[-1]
        assert request["logprobs"] is True and gen.tokens
        if constrain == "grammar":
            assert request["grammar"] == CALL.constraint().gbnf and "response_format" not in request
        elif constrain == "json":
            assert request["response_format"] == {"type": "json_object", "schema": CALL.constraint().json_schema}
            assert "grammar" not in request
        else:
            assert "grammar" not in request and "response_format" not in request
        assert gen.constraint == (None if constrain == "off" else "worker@2")


@pytest.mark.slow
def test_a_real_llama_cpp_server_holds_the_answer_to_the_grammar_and_reports_unmasked_logprobs(smol_server):
    call = DEFAULT_BOOK.analyzer("no, that only removed a blank line", "Add a goodbye line")
    teacher = OpenAICompatTeacher(TeacherConfig(name="srv", backend="openai", host=smol_server, model="smol"))
    assert teacher.answer_form == "grammar"
    gen = generate(teacher, call, SamplingParams(temperature=0.0, max_tokens=96, top_logprobs=3))
    answer = parse_analyzer_output(gen.text)  # in the shape: REASONING then one of the three labels
    assert answer.label in ("accepted", "redo", "further_edit") and gen.constraint == "analyzer@2"
    # The server's numbers are the model's own, before its grammar: the embedded backend, unconstrained
    # and teacher-forced over the server's very tokens, gives the same ones (to llama.cpp's batched
    # rounding). Its tokens, not a re-tokenization of the text: the grammar spells literals such as
    # "REASONING:" in pieces that the tokenizer would merge.
    model = EmbeddedTeacher(TeacherConfig(name="smollm2")).model
    with model.lock:
        by_bytes = {}
        for token_id in reversed(range(model.n_vocab)):  # the lowest id of a spelling wins, as in the vocab
            by_bytes[model.token_bytes(token_id)] = token_id
        ids = [by_bytes[t.token_bytes] for t in gen.tokens]  # every server token is one of the model's
        prompt_ids, _ = model.format_prompt(call.messages("grammar"))
        logits = model.all_logits(prompt_ids + ids, len(prompt_ids))
        model.llm.reset()
    forced_lps = np.array([log_softmax(row)[token] for row, token in zip(logits, ids)])
    diff = np.abs(np.array([t.logprob for t in gen.tokens]) - forced_lps)
    assert len(ids) == len(gen.tokens) > 0 and diff.mean() < 0.1
    forced = [t for t in gen.tokens if t.top and t.token_bytes != t.top[0].token_bytes]
    assert forced and min(t.logprob for t in forced) < -1.0  # greedy, yet not the model's favourite: masked


@pytest.mark.slow
def test_constrain_json_works_on_llama_cpp_python_s_own_server(smol_server):
    """llama-cpp-python types `response_format.type` as "text" | "json_object" and answered OpenAI's
    `json_schema` form with a validation error on every call (HTTP 500 from 0.3.36; fails on 0cf108c); its own form is `json_object` with
    a `schema`, which llama-server reads too."""
    teacher = OpenAICompatTeacher(TeacherConfig(name="srv", backend="openai", host=smol_server, model="smol",
                                                constrain="json"))
    gen = generate(teacher, CALL, SamplingParams(temperature=0.0, max_tokens=120, top_logprobs=2))
    answer = json.loads(gen.text)  # held to the schema: an object with the two fields, nothing else
    assert set(answer) == {"reasoning", "script"} and gen.constraint == "worker@2"
    assert b"".join(t.token_bytes for t in gen.tokens) == gen.text.encode()
