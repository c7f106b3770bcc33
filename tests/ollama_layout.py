"""Write models the way Ollama stores them (manifests/<host>/<namespace>/<model>/<tag> + blobs/sha256-<hex>)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

MODEL = "application/vnd.ollama.image.model"


def tiny_gguf(path: Path, context_length: int = 2048) -> Path:
    """A real, minimal GGUF file (one tensor) written with the `gguf` package."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context_length)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def add_blob(models_dir: Path, source: Path) -> str:
    """Put `source` into the blob store under its real sha256 (hard link when possible); return the hex."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    blob = models_dir / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        try:
            blob.hardlink_to(source)
        except OSError:
            shutil.copyfile(source, blob)
    return digest


def add_model(models_dir: Path, parts: tuple[str, str, str, str], gguf_file: Path,
              *, extra_layers: list[dict] | None = None, model_layer: bool = True) -> Path:
    """A manifest for `parts` = (host, namespace, model, tag) whose model layer is `gguf_file`; returns the blob."""
    digest = add_blob(models_dir, gguf_file)
    config = models_dir / "blobs" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('{"model_format": "gguf"}')
    config_digest = add_blob(models_dir, config)
    layers = list(extra_layers or [])
    if model_layer:
        layers.insert(0, {"mediaType": MODEL, "digest": f"sha256:{digest}", "size": gguf_file.stat().st_size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": f"sha256:{config_digest}", "size": config.stat().st_size},
        "layers": layers,
    }
    path = models_dir / "manifests" / Path(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return models_dir / "blobs" / f"sha256-{digest}"


@pytest.fixture
def quiet_machine(tmp_path, monkeypatch):
    """Discovery sees only what a test starts: Ollama's default address and the OpenAI ports are
    free ports nobody listens on, and Ollama's models directory is an empty one under tmp_path."""
    from engine.teachers import discovery
    from servers import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(discovery, "OPENAI_PORTS", (free_port(),))
    monkeypatch.setattr("engine.teachers.ollama_blobs.SYSTEM_MODELS_DIR", tmp_path / "system-models")
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama-models"))
    return tmp_path / "ollama-models"
