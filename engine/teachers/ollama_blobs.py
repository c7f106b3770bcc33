"""From an Ollama model name to its GGUF file on disk, read the way Ollama itself stores it.

Why: Ollama cannot score a given text, but the GGUF it runs is on this machine. Opening that very
file with the embedded llama.cpp backend gives exact teacher-forced log-probabilities of the same
weights, and discovery can say up front whether that is possible (the file exists and this user
may read it).

The layout (Ollama's `types/model/name.go`, `manifest/paths.go`, `server/images.go`):
- a name is `[host/][namespace/]model[:tag]`, completed with `registry.ollama.ai`, `library` and
  `latest`; `hf.co/bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Q4_K_M` keeps its own host and namespace;
- its manifest is the JSON file `MODELS/manifests/<host>/<namespace>/<model>/<tag>`; the layer with
  `mediaType` `application/vnd.ollama.image.model` names the weights by `digest` `sha256:<64 hex>`
  (when a manifest has several, Ollama uses the last one, and so do we);
- the blob is `MODELS/blobs/sha256-<64 hex>`.
`MODELS` is `$OLLAMA_MODELS`, else `~/.ollama/models`; the Linux install script runs the service as
the `ollama` user, whose models live in `/usr/share/ollama/.ollama/models`.

Every part of a name is checked against Ollama's own character rules before it becomes a path, so
no name (`../../etc/passwd`, absolute paths, empty parts) can point outside the models directory.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
SYSTEM_MODELS_DIR = Path("/usr/share/ollama/.ollama/models")
GGUF_MAGIC = b"GGUF"

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
# Ollama's isValidPart: a first character in [A-Za-z0-9_], then these, per kind.
_PART = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
}


@dataclass(frozen=True)
class OllamaName:
    """A fully qualified Ollama model name; `parse` returns None where Ollama would call it invalid."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, name: str) -> OllamaName | None:
        """Ollama's `ParseName`: the tag after the last ':' that follows the last '/', then model,
        namespace and host from the right; a scheme (`https://`) before the host is dropped."""
        s = name.strip()
        tag = namespace = host = ""
        if s.rfind(":") > s.rfind("/"):
            s, tag = s.rsplit(":", 1)
            if not tag:  # "model:" promises a tag and gives none
                return None
        parts = s.split("/")
        if len(parts) > 3:
            # only the host may be preceded by a scheme: "https://host/ns/model"
            head = "/".join(parts[:-2])
            _, sep, hostpart = head.partition("://")
            if not sep or "/" in hostpart:
                return None
            parts = [hostpart, *parts[-2:]]
        if len(parts) == 3:
            host, namespace, model = parts
        elif len(parts) == 2:
            namespace, model = parts
        else:
            model = parts[0]
        candidate = cls(host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model, tag or DEFAULT_TAG)
        if len(parts) > 1 and not all(parts):  # "a//b", "/b": a part was promised and is empty
            return None
        for kind in ("host", "namespace", "model", "tag"):
            if not _PART[kind].fullmatch(getattr(candidate, kind)):
                return None
        return candidate

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"


def ollama_models_dirs() -> list[Path]:
    """Where Ollama keeps models on this machine, most specific first, without duplicates.

    `$OLLAMA_MODELS` is what a user-run `ollama serve` uses; `~/.ollama/models` is its default; the
    system service (Linux install script) keeps its own under the `ollama` user's home.
    """
    dirs: list[Path] = []
    # Read as Ollama reads it (envconfig/config.go `Var`): surrounding spaces and quotes stripped, no `~`.
    if env := os.environ.get("OLLAMA_MODELS", "").strip().strip("\"'"):
        dirs.append(Path(env))
    else:
        dirs.append(Path.home() / ".ollama" / "models")
    dirs.append(SYSTEM_MODELS_DIR)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _manifest_path(models_dir: Path, name: OllamaName) -> Path | None:
    """The manifest file; Ollama matches names case-insensitively, so fall back to that per part."""
    root = models_dir / "manifests"
    exact = root.joinpath(*name.parts)
    if exact.is_file():
        return exact
    here = root
    for part in name.parts:
        try:
            matches = [p for p in here.iterdir() if p.name.lower() == part.lower()]
        except OSError:
            return None
        if not matches:
            return None
        here = matches[0]
    return here if here.is_file() else None


def model_layer_digest(manifest_path: Path) -> str | None:
    """The hex digest of the manifest's (last) model layer, or None if it has none or is not JSON."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    digest = None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_MEDIA_TYPE:
            match = _DIGEST.fullmatch(str(layer.get("digest", "")))
            digest = match.group(1).lower() if match else None
    return digest


def resolve_ollama_blob(models_dir: Path, model: str) -> Path | None:
    """The GGUF blob of `model` (an Ollama name such as `qwen2.5-coder:7b`) under `models_dir`.

    None when the name is not a valid Ollama name, the model is not pulled there, its manifest has
    no model layer, or the blob is missing. The file may still be unreadable for this user (the
    system service's files): check with `blob_readable`.
    """
    name = OllamaName.parse(model)
    if name is None:
        return None
    manifest = _manifest_path(Path(models_dir), name)
    if manifest is None:
        return None
    digest = model_layer_digest(manifest)
    if digest is None:
        return None
    blob = Path(models_dir) / "blobs" / f"sha256-{digest}"
    return blob if blob.is_file() else None


def find_ollama_blob(model: str, models_dirs: list[Path] | None = None) -> Path | None:
    """`resolve_ollama_blob` over every place Ollama keeps models (`ollama_models_dirs()`), first found."""
    for models_dir in models_dirs if models_dirs is not None else ollama_models_dirs():
        if (blob := resolve_ollama_blob(models_dir, model)) is not None:
            return blob
    return None


def blob_readable(path: Path) -> bool:
    """This user can open the file and it starts like a GGUF (a safetensors model would not)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False
