"""Discovery of local teachers: the Ollama stand-in, a real llama_cpp.server, hosts, timeouts, the CLI."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest

from engine.config import load_config
from engine.errors import InputError, ModelNotFound, TeacherUnavailable
from engine.teachers import discovery
from engine.teachers.discovery import (
    FoundModel,
    Timeouts,
    configured_as,
    discover,
    inspect_source,
    is_local,
    ollama_host,
    parse_source,
    parse_version,
    report_lines,
)
from engine.teachers.embedded import default_gguf_path
from ollama_layout import add_model, quiet_machine, tiny_gguf  # noqa: F401  (fixture)
from servers import FakeOllama, OllamaModel, free_port, llama_cpp_server
from tui.cli import main

CODER = OllamaModel("qwen2.5-coder:7b-instruct", context_length=32768)
LLAMA = OllamaModel("llama3.2:3b", family="llama", parameter_size="3.2B", quantization="Q4_0", context_length=131072,
                    size=2019393189, digest="a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72")
EMBED = OllamaModel("nomic-embed-text", family="nomic-bert", capabilities=("embedding",))
CLOUD = OllamaModel("qwen3-coder:480b-cloud", remote_host="https://ollama.com:443")
IMAGE = OllamaModel("x/flux2-klein", family="flux", capabilities=("image",))


def two_models(**kw) -> FakeOllama:
    return FakeOllama(more=[CODER, LLAMA, EMBED, CLOUD], **kw)


def ollama_server(found):
    return next(s for s in found.servers if s.kind == "ollama" and s.running)


@pytest.mark.parametrize("value, url", [
    (None, "http://127.0.0.1:11434"), ("", "http://127.0.0.1:11434"), (":56789", "http://127.0.0.1:56789"),
    ("0.0.0.0", "http://0.0.0.0:11434"), ("gpu-box", "http://gpu-box:11434"),
    ("https://example.com", "https://example.com:443"), ("[::1]:8000", "http://[::1]:8000"),
])
def test_ollama_host_is_read_as_the_ollama_client_reads_it(monkeypatch, value, url):
    if value is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", value)
    assert ollama_host() == url


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:11434", True), ("localhost:8080", True), ("http://[::1]:1", True), ("0.0.0.0", True),
    ("http://127.9.9.9", True), ("http://192.168.1.5:11434", False), ("https://example.com", False),
])
def test_only_loopback_counts_as_this_machine(url, local):
    assert is_local(url) is local


def test_parse_version():
    assert parse_version("0.12.11") == (0, 12, 11) and parse_version("v0.13.0") == (0, 13, 0)
    assert parse_version("0.12.11-rc1") == (0, 12, 11)
    assert parse_version("0.0.0") is None and parse_version("dev") is None


def test_the_stand_in_ollama_models_with_their_details_and_blobs(quiet_machine, monkeypatch, tmp_path):
    blob = add_model(quiet_machine, ("registry.ollama.ai", "library", "llama3.2", "3b"), tiny_gguf(tmp_path / "t.gguf"))
    with two_models() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        found = discover()
    assert all(is_local(s.url) for s in found.servers)
    olla = ollama_server(found)
    assert olla.label == "Ollama 0.13.0" and olla.url == server.url
    assert "not listed: 1 embedding model, 1 cloud model" in olla.note
    by_name = {m.model: m for m in olla.models}
    assert list(by_name) == ["qwen2.5-coder:7b", "qwen2.5-coder:7b-instruct", "llama3.2:3b"]
    coder, llama = by_name["qwen2.5-coder:7b-instruct"], by_name["llama3.2:3b"]
    assert (coder.family, coder.parameter_size, coder.quantization, coder.size) == ("qwen2", "7.6B", "Q4_K_M", 4683075271)
    assert coder.context_length == 32768 and coder.n_ctx == 8192 and coder.has_template
    assert coder.logprobs == "yes" and coder.blob_status == "not found" and "OLLAMA_MODELS" in coder.note
    assert llama.context_length == 131072 and llama.blob == str(blob) and llama.blob_readable and not llama.note
    assert by_name["qwen2.5-coder:7b"].n_ctx == 4096  # /api/show gave no context length
    assert coder.source == "ollama:qwen2.5-coder:7b-instruct"
    assert [s.problem for s in found.servers if s.kind == "openai"] == ["not running"]


def test_image_generation_models_are_not_counted_as_embedding_models(quiet_machine, monkeypatch):
    """An image-generation model (capability "image", types/model/capability.go) was reported as an
    embedding model (fails on 0cf108c)."""
    with FakeOllama(more=[CODER, EMBED, IMAGE]) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        olla = ollama_server(discover())
    assert "not listed: 1 embedding model, 1 image model" in olla.note
    assert [m.model for m in olla.models] == ["qwen2.5-coder:7b", "qwen2.5-coder:7b-instruct"]


def test_the_modelfile_path_finds_a_blob_the_environment_does_not_name(quiet_machine, monkeypatch, tmp_path):
    """The system service may keep models where this user's OLLAMA_MODELS does not point."""
    elsewhere = add_model(tmp_path / "service-models", ("registry.ollama.ai", "library", "llama3.2", "3b"),
                          tiny_gguf(tmp_path / "t.gguf"))
    llama = OllamaModel(LLAMA.name, blob=str(elsewhere))
    with FakeOllama(more=[llama]) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        found = {m.model: m for m in discover().models}
    assert found["llama3.2:3b"].blob == str(elsewhere) and found["llama3.2:3b"].blob_readable


@pytest.mark.parametrize("version, logprobs, says", [
    ("0.12.10", "no", "upgrade Ollama to 0.12.11 or newer"),
    ("0.12.11", "yes", ""),
    ("0.0.0", "unknown", "development build"),
])
def test_log_probabilities_follow_the_ollama_version(quiet_machine, monkeypatch, version, logprobs, says):
    with two_models(version=version) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        found = discover()
    assert {m.logprobs for m in found.models} == {logprobs}
    assert says in ollama_server(found).note and all(says in m.logprobs_note for m in found.models)


def test_hosts_are_probed_only_when_named(quiet_machine):
    with two_models() as server:
        assert not any(s.running for s in discover().servers)  # not at OLLAMA_HOST, not on a usual port
        found = discover([server.url.replace("http://", "")])
        assert ollama_server(found).url == server.url and len(found.models) == 3
        assert found.named_hosts == (server.url,)
    nobody = f"http://127.0.0.1:{free_port()}"
    found = discover([nobody])
    named = [s for s in found.servers if s.url == nobody]
    assert len(named) == 1 and not named[0].running
    assert named[0].problem == "neither Ollama nor an OpenAI-compatible server answers (not running)"


def silent_listeners(n: int, events: list[tuple[str, int]], stop: threading.Event) -> tuple[list[socket.socket], threading.Thread]:
    """`n` loopback servers that accept connections, read what comes and never answer; `events` gets
    ("open", i) when listener i accepts a connection and ("closed", i) when its client hangs up, in the
    order they happen."""
    listeners = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        listeners.append(s)

    def watch() -> None:
        conns: dict[socket.socket, int] = {}
        while not stop.is_set():
            ready, _, _ = select.select(listeners + list(conns), [], [], 0.05)
            for sock in ready:
                if sock in listeners:
                    conn, _ = sock.accept()
                    conns[conn] = listeners.index(sock)
                    events.append(("open", conns[conn]))
                elif not sock.recv(65536):
                    events.append(("closed", conns.pop(sock)))
                    sock.close()
        for conn in conns:
            conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return listeners, watcher


def test_a_silent_server_costs_one_timeout_and_probes_run_together(quiet_machine, monkeypatch):
    """Three servers that accept connections and never answer: each probe asks once and gives up after
    its read timeout, and they run at once. Checked by the order of what the servers saw, not by a
    clock that a loaded machine stretches: every probe had connected before the first one hung up."""
    events: list[tuple[str, int]] = []
    stop = threading.Event()
    listeners, watcher = silent_listeners(3, events, stop)
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in listeners]
    monkeypatch.setenv("OLLAMA_HOST", urls[0])
    monkeypatch.setattr(discovery, "OPENAI_PORTS", tuple(s.getsockname()[1] for s in listeners[1:]))
    try:
        found = discover(timeouts=Timeouts(connect=0.5, read=1.5))
        while len(events) < 6 and watcher.is_alive():  # the last hang-ups reach the watcher (pytest-timeout bounds it)
            time.sleep(0.01)
    finally:
        stop.set()
        watcher.join()
        for s in listeners:
            s.close()
    assert [s.problem for s in found.servers] == ["did not answer in time"] * 3
    assert sorted(events) == [("closed", i) for i in range(3)] + [("open", i) for i in range(3)]  # one ask each
    assert [kind for kind, _ in events] == ["open"] * 3 + ["closed"] * 3  # all three at once


def test_inspect_source_checks_the_model_on_its_server(quiet_machine, monkeypatch):
    with two_models() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        assert inspect_source("ollama:llama3.2:3b").context_length == 131072
        assert inspect_source("ollama:qwen2.5-coder:7b").model == "qwen2.5-coder:7b"
        with pytest.raises(ModelNotFound, match="has no model 'nope'.*ollama pull nope"):
            inspect_source("ollama:nope")
        with pytest.raises(ModelNotFound):
            inspect_source("ollama:nomic-embed-text")  # not a teacher
        with pytest.raises(InputError, match="carries its URL"):
            inspect_source(f"openai:{server.url}#m", host=server.url)
    with pytest.raises(TeacherUnavailable, match="no Ollama at .*not running"):
        inspect_source("ollama:llama3.2:3b")
    for bad in ("llama3.2", "olla:x", "openai:http://h:1", "openai:#m", "ollama:"):
        with pytest.raises(InputError):
            parse_source(bad)


def test_configured_as_matches_backend_model_and_server(config):
    found = FoundModel("ollama", "http://localhost:11434/", "qwen2.5-coder:7b")
    assert configured_as(config, found) is None
    config.teachers["a"].backend, config.teachers["a"].model = "ollama", "qwen2.5-coder:7b"
    assert configured_as(config, found) == "a"  # no host: Ollama's default address
    config.teachers["a"].host = "http://10.0.0.2:11434"
    assert configured_as(config, found) is None
    config.teachers["a"].host, config.teachers["a"].model = "http://127.0.0.1:11434", "qwen2.5-coder:7b"
    assert configured_as(config, FoundModel("openai", "http://127.0.0.1:11434", "qwen2.5-coder:7b")) is None
    config.teachers["b"].backend, config.teachers["b"].model, config.teachers["b"].host = "ollama", "tiny", ""
    assert configured_as(config, FoundModel("ollama", "http://127.0.0.1:11434", "tiny:latest")) == "b"


@pytest.mark.slow
def test_a_real_llama_cpp_server_with_and_without_log_probabilities(quiet_machine, smol_server):
    model = str(default_gguf_path())
    # a loaded CI machine answers the first completion slowly: generous timeouts, the behaviour is the point
    patient = Timeouts(read=30.0, logprobs_probe=120.0)
    url = smol_server  # the shared server (tests/conftest.py): alias "smol", log-probabilities on
    found = discover([url], timeouts=patient)
    server = next(s for s in found.servers if s.url == url)
    assert server.kind == "openai" and server.running and server.label == "llama_cpp.server"
    assert [(m.model, m.logprobs, m.source) for m in server.models] == [("smol", "yes", f"openai:{url}#smol")]
    assert inspect_source(f"openai:{url}/v1#smol").host == url
    with pytest.raises(ModelNotFound, match="has no model 'nope'"):
        inspect_source(f"openai:{url}#nope")
    with llama_cpp_server(model, alias="plain", logits_all=False) as url:
        (plain,) = discover([url], timeouts=patient).models
        assert plain.logprobs == "no" and "--logits_all true" in plain.logprobs_note


# -- the CLI --------------------------------------------------------------------------------------
def run_cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_shake_teachers_discover_prints_what_was_found(quiet_machine, shake_env, monkeypatch, capsys):
    with two_models() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        rc, out, _ = run_cli(["teachers", "--discover"], capsys)
        assert rc == 0
        assert out.splitlines()[0] == "worker's teachers: a -> b"
        assert f"Ollama 0.13.0 at {server.url}" in out
        assert "qwen2.5-coder:7b-instruct  4.7 GB  qwen2  7.6B  Q4_K_M  context 32768  log-probabilities: yes" in out
        assert "add: shake teachers add llama3.2-3b --from ollama:llama3.2:3b" in out
        rc, out, _ = run_cli(["teachers", "--discover", "--json"], capsys)
        data = json.loads(out)
        assert [m["model"] for s in data["servers"] for m in s["models"]][1:] == ["qwen2.5-coder:7b-instruct", "llama3.2:3b"]
        rc, _, err = run_cli(["teachers", "--host", server.url], capsys)
        assert rc == 2 and err.count("\n") == 1 and "--discover" in err


def test_shake_teachers_add_then_discover_shows_it_configured(quiet_machine, shake_env, monkeypatch, capsys):
    with two_models() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        rc, out, _ = run_cli(["teachers", "add", "llama", "--from", "ollama:llama3.2:3b"], capsys)
        assert rc == 0 and "the worker's teachers: llama -> a -> b" in out
        config = load_config()
        assert config.agents["worker"] == ["llama", "a", "b"] and config.agents["planner"] == ["a"]
        t = config.teachers["llama"]
        assert (t.backend, t.model, t.host, t.n_ctx) == ("ollama", "llama3.2:3b", server.url, 8192)
        rc, out, _ = run_cli(["teachers", "--discover"], capsys)
        assert "worker's teachers: llama -> a -> b" in out
        assert "[configured as 'llama']" in out and "add: shake teachers add llama3.2-3b" not in out
        assert report_lines(config, discover())[0] == "worker's teachers: llama -> a -> b"


def test_shake_teachers_add_refuses_bad_input_in_one_line(quiet_machine, shake_env, monkeypatch, capsys):
    config_file = shake_env / "config.toml"
    original = config_file.read_bytes()
    with two_models() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        for argv, says in [
            (["teachers", "add", "a", "--from", "ollama:llama3.2:3b"], "already configured"),
            (["teachers", "add", "x", "--from", "ollama:nope"], "has no model 'nope'"),
            (["teachers", "add", "x", "--from", "ollama:llama3.2:3b", "--host", f"127.0.0.1:{free_port()}"],
             "not running"),
            (["teachers", "add", "x", "--from", "llama3.2:3b"], "give ollama:MODEL or openai:URL#MODEL"),
            (["teachers", "add", "bad name", "--from", "ollama:llama3.2:3b"], "teacher name 'bad name'"),
        ]:
            rc, out, err = run_cli(argv, capsys)
            assert rc == 2 and says in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
            assert config_file.read_bytes() == original
        rc, out, _ = run_cli(["teachers", "add", "a", "--from", "ollama:llama3.2:3b", "--force"], capsys)
        assert rc == 0 and load_config().teachers["a"].backend == "ollama"
        assert load_config().agents["worker"] == ["a", "b"]
