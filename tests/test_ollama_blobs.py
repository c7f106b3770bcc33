"""Ollama model names to GGUF blobs, on models laid out exactly as Ollama stores them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.teachers.ollama_blobs import (
    OllamaName,
    blob_readable,
    find_ollama_blob,
    ollama_models_dirs,
    resolve_ollama_blob,
)
from ollama_layout import add_model, tiny_gguf

LIB = ("registry.ollama.ai", "library")


@pytest.fixture
def gguf_file(tmp_path):
    return tiny_gguf(tmp_path / "tiny.gguf")


@pytest.mark.parametrize("name, parts", [
    ("qwen2.5-coder", ("registry.ollama.ai", "library", "qwen2.5-coder", "latest")),
    ("qwen2.5-coder:7b", ("registry.ollama.ai", "library", "qwen2.5-coder", "7b")),
    ("jmorgan/tiny:q4_K_M", ("registry.ollama.ai", "jmorgan", "tiny", "q4_K_M")),
    ("hf.co/bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Q4_K_M",
     ("hf.co", "bartowski", "Qwen2.5-Coder-7B-Instruct-GGUF", "Q4_K_M")),
    ("localhost:5000/team/model", ("localhost:5000", "team", "model", "latest")),
    ("https://example.com/team/model:v1", ("example.com", "team", "model", "v1")),
])
def test_names_complete_like_ollama(name, parts):
    assert OllamaName.parse(name).parts == parts


@pytest.mark.parametrize("name", ["", "model:", ":7b", "a//b", "/abs/path", "../../etc/passwd", "a/b/c/d",
                                  "ns.with.dots/model", "mo del", "model:t/ag", "-model"])
def test_invalid_names_are_refused(name):
    assert OllamaName.parse(name) is None


def test_resolves_the_model_layer_of_a_pulled_model(tmp_path, gguf_file):
    models = tmp_path / "models"
    blob = add_model(models, (*LIB, "tiny", "latest"), gguf_file, extra_layers=[
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10}])
    assert blob.read_bytes() == gguf_file.read_bytes()
    for name in ("tiny", "tiny:latest", "library/tiny", "registry.ollama.ai/library/tiny:latest", "TINY:Latest"):
        assert resolve_ollama_blob(models, name) == blob, name
    assert blob_readable(blob)
    import gguf

    assert gguf.GGUFReader(str(resolve_ollama_blob(models, "tiny"))).fields["llama.context_length"].parts[-1][0] == 2048


def test_other_registries_and_namespaces(tmp_path, gguf_file):
    models = tmp_path / "models"
    blob = add_model(models, ("hf.co", "bartowski", "Coder-GGUF", "Q4_K_M"), gguf_file)
    assert resolve_ollama_blob(models, "hf.co/bartowski/Coder-GGUF:Q4_K_M") == blob
    assert resolve_ollama_blob(models, "bartowski/Coder-GGUF:Q4_K_M") is None  # that is registry.ollama.ai's


def test_missing_pieces_resolve_to_none(tmp_path, gguf_file):
    models = tmp_path / "models"
    assert resolve_ollama_blob(models, "tiny") is None  # no models directory at all
    add_model(models, (*LIB, "tiny", "latest"), gguf_file)
    assert resolve_ollama_blob(models, "tiny:7b") is None  # not pulled with that tag
    assert resolve_ollama_blob(models, "other") is None
    add_model(models, (*LIB, "nolayer", "latest"), gguf_file, model_layer=False)
    assert resolve_ollama_blob(models, "nolayer") is None
    (models / "manifests" / Path(*LIB) / "broken").mkdir()
    (models / "manifests" / Path(*LIB) / "broken" / "latest").write_text("{not json")
    assert resolve_ollama_blob(models, "broken") is None
    gone = add_model(models, (*LIB, "gone", "latest"), tiny_gguf(tmp_path / "other.gguf", 4096))
    gone.unlink()
    assert resolve_ollama_blob(models, "gone") is None
    bad = models / "manifests" / Path(*LIB) / "baddigest" / "latest"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                           "digest": "sha256:../../etc/passwd"}]}))
    assert resolve_ollama_blob(models, "baddigest") is None


def test_the_last_model_layer_wins_as_in_ollama(tmp_path, gguf_file):
    models = tmp_path / "models"
    second = tiny_gguf(tmp_path / "second.gguf", 4096)
    from ollama_layout import add_blob

    digest = add_blob(models, second)
    blob = add_model(models, (*LIB, "two", "latest"), gguf_file, extra_layers=[
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": 1}])
    assert blob != models / "blobs" / f"sha256-{digest}"
    assert resolve_ollama_blob(models, "two") == models / "blobs" / f"sha256-{digest}"


def test_models_dirs_follow_ollama_models_then_home_then_the_service(tmp_path, monkeypatch, gguf_file):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    assert ollama_models_dirs() == [tmp_path / "home" / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "elsewhere"))
    assert ollama_models_dirs()[0] == tmp_path / "elsewhere"
    blob = add_model(tmp_path / "elsewhere", (*LIB, "tiny", "latest"), gguf_file)
    assert find_ollama_blob("tiny") == blob
    assert find_ollama_blob("tiny", [tmp_path / "home" / ".ollama" / "models"]) is None


@pytest.mark.parametrize("quoted", ['"{}"', "'{}'", "  {}  ", '"{}" '])
def test_ollama_models_is_read_as_ollama_reads_it(tmp_path, monkeypatch, quoted):
    """Ollama strips surrounding spaces and quotes and does not expand `~` (envconfig/config.go `Var`);
    the quoted value was taken literally (fails on 0cf108c)."""
    monkeypatch.setenv("OLLAMA_MODELS", quoted.format(tmp_path / "elsewhere"))
    assert ollama_models_dirs()[0] == tmp_path / "elsewhere"
    monkeypatch.setenv("OLLAMA_MODELS", "~/models")
    assert ollama_models_dirs()[0] == Path("~/models")


def test_blob_readable_wants_an_openable_gguf(tmp_path, gguf_file):
    assert blob_readable(gguf_file)
    text = tmp_path / "weights.safetensors"
    text.write_bytes(b"\x08\x00\x00\x00{}")
    assert not blob_readable(text)
    assert not blob_readable(tmp_path / "missing")
    assert not blob_readable(tmp_path)  # a directory cannot be opened as a file


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "B", "7", ".", "..", "/", "/..", ":", "_", "-", "@", " ", "\\", "~", "://"]),
                max_size=20).map("".join))
def test_no_name_reaches_outside_the_models_directory(name):
    """Whatever the name, parsing never raises and a manifest path stays under manifests/."""
    parsed = OllamaName.parse(name)
    if parsed is None:
        return
    assert all(p and "/" not in p and p not in (".", "..") and "\\" not in p for p in parsed.parts)
    root = Path("/models/manifests")
    assert root.joinpath(*parsed.parts).resolve().is_relative_to(root)


@pytest.mark.slow
def test_the_bundled_smollm2_in_ollama_layout_scores_like_the_bundled_file(tmp_path):
    """What the dataset engineer relies on: the resolved blob is the same model for llama.cpp."""
    from engine.config import TeacherConfig
    from engine.teachers.embedded import EmbeddedTeacher, default_gguf_path

    blob = add_model(tmp_path / "models", (*LIB, "smollm2", "135m"), default_gguf_path())
    resolved = resolve_ollama_blob(tmp_path / "models", "smollm2:135m")
    assert resolved == blob and blob_readable(resolved)
    messages = [{"role": "user", "content": "Say hi."}]
    via_ollama = EmbeddedTeacher(TeacherConfig(name="o", model=str(resolved), n_ctx=512)).score(messages, "Hi!", top_logprobs=3)
    bundled = EmbeddedTeacher(TeacherConfig(name="b", n_ctx=512)).score(messages, "Hi!", top_logprobs=3)
    assert via_ollama.token_ids.tolist() == bundled.token_ids.tolist()
    assert via_ollama.logprobs.tolist() == pytest.approx(bundled.logprobs.tolist(), abs=1e-5)
