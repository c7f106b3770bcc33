"""Teachers under failure: down, slow, loading, cut mid-stream, error mid-stream, missing model.

Each gives one clear message, a partial answer is never returned (so never stored), and the next
attempt succeeds once the server is back. Backoff delays are shortened for the tests.
"""

from __future__ import annotations

import pytest

from engine.agents import worker
from engine.config import TeacherConfig
from engine.errors import ModelNotFound, TeacherError, TeacherUnavailable
from engine.teachers import retry
from engine.teachers.base import SamplingParams
from engine.teachers.ollama_backend import OllamaTeacher
from engine.teachers.openai_compat import OpenAICompatTeacher
from helpers import rows_json
from servers import FakeOllama, FakeOpenAI, free_port

MESSAGES = worker.worker_messages("x", "print(1)\n")
SP = SamplingParams(max_tokens=10, top_logprobs=1)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(retry, "BASE_DELAY_S", 0.01)


BACKENDS = {
    "ollama": (FakeOllama, lambda url, **kw: OllamaTeacher(TeacherConfig(
        name="t", backend="ollama", host=url, model=kw.pop("model", "m"), connect_timeout_s=1.0, **kw))),
    "openai": (FakeOpenAI, lambda url, **kw: OpenAICompatTeacher(TeacherConfig(
        name="t", backend="openai", host=url, model=kw.pop("model", "m"), connect_timeout_s=1.0, **kw))),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


def test_down_then_back(backend):
    server_cls, make = backend
    port = free_port()
    teacher = make(f"http://127.0.0.1:{port}", retries=2)
    with pytest.raises(TeacherUnavailable, match="not reachable.*gave up after 3 attempts"):
        teacher.generate(MESSAGES, SP)
    with server_cls(model="m", port=port):
        assert teacher.generate(MESSAGES, SP).text == "Hello world"


def test_loading_503_is_retried_then_given_up(backend):
    server_cls, make = backend
    with server_cls(model="m") as server:
        server.fail_first = 2
        assert make(server.url, retries=3).generate(MESSAGES, SP).text == "Hello world"
        server.fail_first = 10
        with pytest.raises(TeacherUnavailable, match="(loading|busy).*gave up after 2 attempts"):
            make(server.url, retries=1).generate(MESSAGES, SP)


def test_slow_server_hits_the_chunk_timeout(backend):
    server_cls, make = backend
    with server_cls(model="m") as server:
        server.mode = "slow"
        streamed = []
        with pytest.raises(TeacherUnavailable, match="sent nothing for .* the partial answer was discarded"):
            make(server.url, chunk_timeout_s=0.3).generate(MESSAGES, SP, on_token=streamed.append)
        assert streamed  # something had arrived, and it was not returned
        server.mode = "ok"
        assert make(server.url).generate(MESSAGES, SP).text == "Hello world"


def test_whole_generation_timeout(backend):
    server_cls, make = backend
    with server_cls(model="m") as server:
        server.mode = "slow"
        with pytest.raises(TeacherUnavailable, match="did not finish within 1 s"):
            make(server.url, timeout_s=1.0, chunk_timeout_s=5.0).generate(MESSAGES, SP)


def test_cut_stream_discards_the_partial_answer(backend):
    server_cls, make = backend
    with server_cls(model="m") as server:
        server.mode = "cut"
        with pytest.raises(TeacherUnavailable, match="connection broke after 1 pieces.*discarded"):
            make(server.url).generate(MESSAGES, SP)
        assert len(server.requests) == 1  # a broken stream is not retried behind the caller's back
        server.mode = "ok"
        assert make(server.url).generate(MESSAGES, SP).text == "Hello world"


def test_error_line_mid_stream(backend):
    server_cls, make = backend
    with server_cls(model="m") as server:
        server.mode = "error_mid_stream"
        with pytest.raises(TeacherError, match="mid-answer.*discarded"):
            make(server.url).generate(MESSAGES, SP)


def test_missing_model_is_not_retried(backend):
    server_cls, make = backend
    with server_cls(model="m") as server:
        with pytest.raises(ModelNotFound):
            make(server.url, model="nope", retries=3).generate(MESSAGES, SP)
        assert len(server.requests) == 1


def test_a_broken_stream_writes_nothing_and_the_session_goes_on(shake_env, tmp_path):
    from engine.config import load_config
    from engine.session import Session
    from engine.store import DatasetStore
    from engine.teachers.pool import TeacherPool

    answer = ["REASONING: add a line.\n```python\n", "print(1)\n", "```\n"]
    with FakeOllama(model="m", reply=answer) as server:
        (shake_env / "config.toml").write_text(f'[teachers.o]\nbackend = "ollama"\nhost = "{server.url}"\nmodel = "m"\n')
        config = load_config()
        script = tmp_path / "s.py"
        script.write_text("print(0)\n")
        with DatasetStore(config.data_dir) as store:
            session = Session.start(store, TeacherPool(config), config, script, "print one")
            session.plan()  # the reply has no numbered steps: the request becomes the only step
            server.mode = "cut"
            with pytest.raises(TeacherUnavailable, match="discarded"):
                session.propose()
            assert rows_json(store) == [] and session.state.step.cycle == 0
            server.mode = "ok"
            assert session.propose().script == "print(1)\n"
