"""The real C++ `llama-server`, built from the llama.cpp sources llama-cpp-python 0.3.36's sdist vendors
(`make test-llama-server` builds it with cmake, no network, and runs this file).

It sends what the stand-ins in `servers.py` imitate: one log-probability entry per *sent text*, split
characters held back, reasoning as `delta.reasoning_content`. Building it takes many CPU minutes, so
`make test` does not; without the binary every test here is skipped and says how to build it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.agents.call import generate
from engine.config import TeacherConfig
from engine.prompts import DEFAULT_BOOK
from engine.teachers.base import Constraint, SamplingParams
from engine.teachers.openai_compat import OpenAICompatTeacher
from servers import LLAMA_SERVER_BIN, llama_server

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("SHAKE_LLAMA_SERVER", ROOT / LLAMA_SERVER_BIN))

pytestmark = [
    pytest.mark.llama_server,
    pytest.mark.skipif(not os.access(BINARY, os.X_OK),
                       reason=f"no llama-server at {BINARY}: `make test-llama-server` builds it and runs these tests"),
]


@pytest.fixture(scope="module")
def server_url():
    from engine.teachers.embedded import default_gguf_path

    with llama_server(str(BINARY), str(default_gguf_path())) as url:
        yield url


def teacher(url: str, **kw) -> OpenAICompatTeacher:
    return OpenAICompatTeacher(TeacherConfig(name="cpp", backend="openai", host=url, model="smol", **kw))


def test_rows_from_llama_server_carry_soft_labels_that_spell_their_text(server_url, tmp_path):
    """Grammar-forced multi-byte text (characters the small model writes in pieces, so llama-server holds
    them back and sends one entry for several tokens): the stored chosen's soft labels spell its text
    exactly, and the tokens that are one token's own keep their labels."""
    import records
    from engine.store import DatasetStore

    forced = Constraint("wire@1", 'root ::= "Grüße, 日本語 " [a-z]+ " café 🙂👩‍💻 — done."', {})
    src = teacher(server_url)
    gen = src.generate([{"role": "user", "content": "Greet me in German and Japanese."}],
                       SamplingParams(temperature=0.0, max_tokens=64, top_logprobs=3), constraint=forced)
    assert gen.text.startswith("Grüße, 日本語 ") and gen.text.endswith(" café 🙂👩‍💻 — done."), gen.text
    assert b"".join(t.token_bytes for t in gen.tokens) == gen.text.encode()
    with DatasetStore(tmp_path) as store:
        row = records.store_generation(store, gen, src)
        stats = store.stats()
        stored = store.get_logprobs(row.chosen.logprobs.blob)
    assert not row.chosen.soft_labels_refused and stored.spells(row.chosen.text)
    assert 0 < stats.labelled_bytes < stats.chosen_bytes  # the held-back characters are unlabelled, the rest not


def test_constrain_json_works_on_llama_server(server_url):
    """`constrain = "json"` sends `response_format: {"type": "json_object", "schema": ...}`, which
    llama-server reads as a schema (server-common.cpp `oaicompat_chat_params_parse`)."""
    call = DEFAULT_BOOK.worker("Print bye after hello.", "Print bye after hello.", None, 'print("hello")\n')
    gen = generate(teacher(server_url, constrain="json"), call,
                   SamplingParams(temperature=0.0, max_tokens=120, top_logprobs=2))
    answer = json.loads(gen.text)  # held to the schema: an object with the two fields, nothing else
    assert set(answer) == {"reasoning", "script"} and gen.constraint == "worker@2"
    assert b"".join(t.token_bytes for t in gen.tokens) == gen.text.encode()


# A ChatML template that renders an assistant's `reasoning_content` between think tags, as Qwen3's does:
# from it llama-server learns the tags and, with `--reasoning-format deepseek`, streams what lies between
# them as `delta.reasoning_content` (common/chat.cpp, tools/server/server-task.cpp `to_json_oaicompat_chat`).
THINKING_TEMPLATE = """{%- for message in messages %}<|im_start|>{{ message.role }}
{% if message.role == 'assistant' and message.reasoning_content %}<think>
{{ message.reasoning_content }}
</think>

{% endif %}{{ message.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def test_a_thinking_answer_from_llama_server_is_split_exactly_and_stored(tmp_path):
    """The small model made to think by a grammar (`<think>` ... `</think>` then the answer, multi-byte text
    on both sides): the reasoning arrives as `reasoning_content`, and the stored chosen's soft labels spell
    exactly its text, the reasoning's exactly its thinking; the tags' entries label neither."""
    import records
    from engine.store import DatasetStore
    from engine.teachers.embedded import default_gguf_path

    template = tmp_path / "think.jinja"
    template.write_text(THINKING_TEMPLATE)
    forced = Constraint("think@1", 'root ::= "<think>" "Grüße, 日本語 " [a-z]+ "." "</think>" " café 🙂 " [a-z]+ "."', {})
    with llama_server(str(BINARY), str(default_gguf_path()),
                      extra=("--jinja", "--chat-template-file", str(template), "--reasoning-format", "deepseek")) as url:
        src = teacher(url, think="on")
        gen = src.generate([{"role": "user", "content": "Think, then greet me."}],
                           SamplingParams(temperature=0.0, max_tokens=64, top_logprobs=3), constraint=forced)
    assert gen.thinking.startswith("Grüße, 日本語 ") and "café 🙂" in gen.text, (gen.thinking, gen.text)
    assert "think>" not in gen.thinking + gen.text
    assert b"".join(t.token_bytes for t in gen.thinking_tokens) == gen.thinking.encode()
    assert b"".join(t.token_bytes for t in gen.tokens) == gen.text.encode()
    assert any(t.top for t in gen.thinking_tokens) and any(t.top for t in gen.tokens)
    with DatasetStore(tmp_path / "data") as store:
        row = records.store_generation(store, gen, src)
        stored = store.get_logprobs(row.chosen.logprobs.blob)
        reasoning = store.get_logprobs(row.chosen.logprobs.thinking_blob)
    assert not row.chosen.soft_labels_refused
    assert stored.spells(row.chosen.text) and reasoning.spells(row.chosen.thinking)
