"""Find the teachers a user already runs: Ollama and OpenAI-compatible servers on this machine.

Why: most users' real teacher is a model they already serve (Ollama with a coding model, a
llama.cpp server), not the bundled 135M model. Discovery runs at every app start, so it must be
fast and harmless: every probe has a short timeout, all probes run at once, and only loopback
addresses are probed unless the user names a host (`--host URL`, or `OLLAMA_HOST`, read exactly as
the `ollama` client reads it).

What is asked, and why that and no more:
- Ollama: `GET /api/version` (log-probabilities need >= 0.12.11, the release that added them to
  `/api/chat`), `GET /api/tags` (name, size, family, parameter size, quantization) and one
  `POST /api/show` per model (context length, chat template, capabilities, and the blob path its
  Modelfile names). Nothing is generated: that would load each model into memory. Whether the GGUF
  is readable here (for exact re-scoring with the embedded backend) comes from `ollama_blobs`.
  Embedding-only and cloud models are not teachers on this machine and are left out (and counted).
- OpenAI-compatible servers on the usual local ports (8080: llama.cpp's `llama-server`, 8000:
  `python -m llama_cpp.server`, vLLM): `GET /health` (llama.cpp answers 503 while loading),
  `GET /v1/models`, and a one-token chat completion asking for log-probabilities. The last one is
  the only honest test: `llama_cpp.server` returns them only when started with `--logits_all true`.
  Models a llama.cpp router lists as not loaded are not probed (the probe would load them).
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from engine.config import Config, TeacherConfig, default_of
from engine.config_edit import free_name, slug
from engine.errors import InputError, ModelNotFound, TeacherUnavailable
from engine.teachers.ollama_backend import DEFAULT_HOST as OLLAMA_DEFAULT_HOST
from engine.teachers.ollama_blobs import blob_readable, find_ollama_blob

OLLAMA_LOGPROBS_SINCE = (0, 12, 11)
OLLAMA_UPGRADE = ("upgrade Ollama to 0.12.11 or newer (Linux: `curl -fsSL https://ollama.com/install.sh | sh`; "
                  "macOS and Windows: update the app)")
# llama.cpp's server (8080) and llama-cpp-python's (8000, also vLLM's) default ports.
OPENAI_PORTS = (8080, 8000)
# Ollama reserves the KV cache for the whole `num_ctx`: 8192 tokens hold a script of several hundred
# lines plus the instruction and the answer, and cost a 7B model about half a GB, where its full
# 32k or 128k would cost several GB on every request.
N_CTX_CAP = 8192
N_CTX_UNKNOWN = default_of(TeacherConfig, "n_ctx")  # the configuration's own default, when a server does not say

YES, NO, UNKNOWN = "yes", "no", "unknown"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. Loopback connects are answered at once or refused, so `connect` is short."""

    connect: float = 0.5
    read: float = 2.0
    logprobs_probe: float = 8.0

    def httpx(self, read: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(read or self.read, connect=self.connect)


@dataclass(frozen=True)
class FoundModel:
    """One model a server offers, with what `shake teachers add` needs to configure it."""

    kind: str  # "ollama" | "openai": the teacher backend it becomes
    host: str  # the server's base URL
    model: str  # the name the server knows it by
    size: int = 0  # bytes on disk, 0 when the server does not say
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    context_length: int = 0  # the model's trained context, 0 when unknown
    has_template: bool = False  # a chat template (Ollama); a model without one answers chat badly
    blob: str = ""  # the GGUF on this machine (Ollama), empty when not found
    blob_status: str = ""  # Ollama: readable | unreadable | not found | remote (see `_ollama_blob`)
    logprobs: str = UNKNOWN  # YES | NO | UNKNOWN: whether generations carry log-probabilities
    logprobs_note: str = ""  # why not, and what to change
    note: str = ""  # anything else the user should know or do

    @property
    def blob_readable(self) -> bool:
        """This user can open the GGUF: exact re-scoring with the embedded backend is possible."""
        return self.blob_status == "readable"

    @property
    def source(self) -> str:
        """What `shake teachers add NAME --from SOURCE` takes for this model."""
        return f"ollama:{self.model}" if self.kind == "ollama" else f"openai:{self.host}#{self.model}"

    @property
    def n_ctx(self) -> int:
        """The context to configure: the model's own, capped (see N_CTX_CAP)."""
        return min(self.context_length, N_CTX_CAP) if self.context_length > 0 else N_CTX_UNKNOWN


@dataclass(frozen=True)
class FoundServer:
    kind: str  # "ollama" | "openai"
    url: str
    running: bool
    label: str = ""  # "Ollama 0.13.0", "llama.cpp server", "llama_cpp.server", "OpenAI-compatible server"
    version: str = ""
    problem: str = ""  # why nothing was found there
    note: str = ""  # e.g. what to upgrade for log-probabilities, models left out
    models: tuple[FoundModel, ...] = ()


@dataclass(frozen=True)
class Discovery:
    servers: tuple[FoundServer, ...] = ()
    seconds: float = 0.0
    named_hosts: tuple[str, ...] = field(default=())

    @property
    def models(self) -> list[FoundModel]:
        return [m for s in self.servers for m in s.models]


# -- addresses ----------------------------------------------------------------------------------
def ollama_host() -> str:
    """The Ollama URL as the `ollama` client derives it from `OLLAMA_HOST` (default 127.0.0.1:11434).

    The client's own parser is used so that `shake` and the `ollama` command always agree
    (`:56789`, `1.2.3.4`, `https://host`, `[::1]:11434/path` are all accepted there).
    """
    from ollama._client import _parse_host

    return _parse_host(os.environ.get("OLLAMA_HOST"))


def normalize_url(url: str) -> str:
    """A base URL for comparing and probing: scheme added, trailing `/` and `/v1` dropped."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
    return url


def is_local(url: str) -> bool:
    """Loopback, or the unspecified address a server binds to (0.0.0.0 connects to this machine)."""
    host = (urlsplit(normalize_url(url)).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def same_server(a: str, b: str) -> bool:
    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(normalize_url(url))
        host = parts.hostname or ""
        host = "127.0.0.1" if host in ("localhost", "0.0.0.0") else host
        return parts.scheme, host, parts.port, parts.path

    return key(a) == key(b)


def _client(url: str, timeouts: Timeouts) -> httpx.Client:
    # A proxy from the environment must not swallow probes of this machine's own ports.
    return httpx.Client(timeout=timeouts.httpx(), trust_env=not is_local(url))


def _first_answer(client: httpx.Client, kind: str, url: str, path: str) -> httpx.Response | FoundServer:
    """The server's answer to the first request, or the server reported as not reachable."""
    try:
        return client.get(f"{url}{path}")
    except httpx.ConnectError:
        problem = "not running"
    except httpx.TimeoutException:
        problem = "did not answer in time"
    except httpx.HTTPError as err:
        problem = f"no answer ({type(err).__name__})"
    return FoundServer(kind, url, False, problem=problem)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`0.12.11`, `0.12.11-rc1`, `v0.13.0` -> (0, 12, 11); None for `0.0.0` (a development build)."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if not match:
        return None
    version = tuple(int(x) for x in match.groups())
    return None if version == (0, 0, 0) else version  # type: ignore[return-value]


# -- Ollama -------------------------------------------------------------------------------------
def _context_length(show: dict) -> int:
    info = show.get("model_info") or {}
    details = show.get("details") or {}
    arch = info.get("general.architecture") or details.get("family") or ""
    for value in (info.get(f"{arch}.context_length"), details.get("context_length")):
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _modelfile_blob(show: dict) -> Path | None:
    """The weights path the server's generated Modelfile names (`FROM /…/blobs/sha256-…`)."""
    for line in (show.get("modelfile") or "").splitlines():
        if line.startswith("FROM "):
            path = Path(line[5:].strip())
            return path if path.is_absolute() and path.name.startswith("sha256") else None
    return None


def _ollama_blob(model: str, show: dict, local: bool) -> tuple[str, str, str]:
    """(path, status, note) for the model's GGUF on this machine."""
    if not local:
        return "", "remote", ""
    blob = find_ollama_blob(model)
    if blob is None and (named := _modelfile_blob(show)) is not None and named.is_file():
        blob = named  # the service keeps its models somewhere this user's environment does not say
    if blob is None:
        return "", "not found", "set OLLAMA_MODELS to Ollama's models directory for exact re-scoring"
    if not blob_readable(blob):
        return str(blob), "unreadable", f"{blob} is not readable by this user: no exact re-scoring"
    return str(blob), "readable", ""


def _ollama_model(client: httpx.Client, url: str, entry: dict, logprobs: tuple[str, str],
                  local: bool) -> FoundModel | str:
    """The model, or the reason it is left out ("embedding", "image", "non-chat", "cloud")."""
    name = entry.get("model") or entry.get("name") or ""
    details = entry.get("details") or {}
    if entry.get("remote_host"):
        return "cloud"
    found = FoundModel(
        "ollama", url, name, size=int(entry.get("size") or 0), family=details.get("family") or "",
        parameter_size=details.get("parameter_size") or "", quantization=details.get("quantization_level") or "",
        logprobs=logprobs[0], logprobs_note=logprobs[1],
    )
    try:
        resp = client.post(f"{url}/api/show", json={"model": name})
        show = resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        show = {}
    if not isinstance(show, dict):
        show = {}
    capabilities = show.get("capabilities")
    if isinstance(capabilities, list) and capabilities and "completion" not in capabilities:
        # types/model/capability.go: "embedding" models and "image" (image generation) ones cannot chat
        return "embedding" if "embedding" in capabilities else "image" if "image" in capabilities else "non-chat"
    blob, status, note = _ollama_blob(name, show, local)
    return replace(found, context_length=_context_length(show), has_template=bool(show.get("template")),
                   blob=blob, blob_status=status, note=note if show else "Ollama did not describe it (/api/show)")


LEFT_OUT = ("embedding", "image", "non-chat", "cloud")  # the kinds of model a teacher cannot be


def probe_ollama(url: str, timeouts: Timeouts = Timeouts()) -> FoundServer:
    url = normalize_url(url)
    with _client(url, timeouts) as client:
        resp = _first_answer(client, "ollama", url, "/api/version")
        if isinstance(resp, FoundServer):
            return resp
        try:
            version = str(resp.json()["version"]) if resp.status_code == 200 else ""
        except (ValueError, KeyError, TypeError):
            version = ""
        if not version:
            return FoundServer("ollama", url, False, problem=f"answers, but not as Ollama (HTTP {resp.status_code})")
        parsed = parse_version(version)
        if parsed is None:
            logprobs = (UNKNOWN, f"version {version!r} is a development build: log-probabilities unknown")
        elif parsed >= OLLAMA_LOGPROBS_SINCE:
            logprobs = (YES, "")
        else:
            logprobs = (NO, f"Ollama {version} returns no log-probabilities: {OLLAMA_UPGRADE}")
        note = logprobs[1]
        try:
            tags = client.get(f"{url}/api/tags")
            tags.raise_for_status()
            entries = [e for e in tags.json().get("models") or [] if isinstance(e, dict)]
        except (httpx.HTTPError, ValueError, AttributeError) as err:
            return FoundServer("ollama", url, True, f"Ollama {version}", version,
                               problem=f"could not list its models ({type(err).__name__})", note=note)
        local = is_local(url)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda e: _ollama_model(client, url, e, logprobs, local), entries))
    models = tuple(r for r in results if isinstance(r, FoundModel))
    left_out = [f"{results.count(k)} {k} model{'s' * (results.count(k) > 1)}" for k in LEFT_OUT
                if k in results]
    if left_out:
        note = "; ".join(filter(None, [note, f"not listed: {', '.join(left_out)}"]))
    problem = "" if models else "no models pulled (`ollama pull qwen2.5-coder:7b`)"
    return FoundServer("ollama", url, True, f"Ollama {version}", version, problem, note, models)


# -- OpenAI-compatible --------------------------------------------------------------------------
SERVER_LABELS = {"llamacpp": "llama.cpp server", "me": "llama_cpp.server"}  # by /v1/models' owned_by


def _openai_logprobs(client: httpx.Client, url: str, model: str, label: str, timeouts: Timeouts) -> tuple[str, str]:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
               "temperature": 0, "logprobs": True, "top_logprobs": 1, "stream": False}
    try:
        resp = client.post(f"{url}/v1/chat/completions", json=payload, timeout=timeouts.httpx(timeouts.logprobs_probe))
    except httpx.TimeoutException:
        return UNKNOWN, "the log-probability check timed out (busy server?)"
    except httpx.HTTPError as err:
        return UNKNOWN, f"the log-probability check failed ({type(err).__name__})"
    try:
        body = resp.json()
        content = ((body.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
    except (ValueError, AttributeError, IndexError):
        content = []
    if resp.status_code == 200 and content:
        return YES, ""
    if label == "llama_cpp.server":
        return NO, "no log-probabilities: start llama_cpp.server with `--logits_all true`"
    return NO, f"the server returned no log-probabilities (HTTP {resp.status_code})"


def probe_openai(url: str, timeouts: Timeouts = Timeouts()) -> FoundServer:
    url = normalize_url(url)
    with _client(url, timeouts) as client:
        health = _first_answer(client, "openai", url, "/health")
        if isinstance(health, FoundServer):
            return health
        if health.status_code == 503:
            return FoundServer("openai", url, True, "llama.cpp server", problem="still loading its model (HTTP 503)")
        try:
            listing = client.get(f"{url}/v1/models")
            listing.raise_for_status()
            entries = [e for e in listing.json().get("data") or [] if isinstance(e, dict) and e.get("id")]
        except (httpx.HTTPError, ValueError, AttributeError):
            return FoundServer("openai", url, False,
                               problem=f"answers, but not as an OpenAI-compatible server (HTTP {health.status_code})")
        owners = {e.get("owned_by") for e in entries}
        label = next((SERVER_LABELS[o] for o in owners if o in SERVER_LABELS), "OpenAI-compatible server")

        def one(entry: dict) -> FoundModel:
            meta = entry.get("meta") or {}
            ctx = meta.get("n_ctx") or meta.get("n_ctx_train") or 0
            status = (entry.get("status") or {}).get("value") if isinstance(entry.get("status"), dict) else None
            if status not in (None, "loaded"):
                logprobs, why = UNKNOWN, f"not loaded ({status}): log-probabilities not checked"
            else:
                logprobs, why = _openai_logprobs(client, url, entry["id"], label, timeouts)
            return FoundModel("openai", url, entry["id"], size=int(meta.get("size") or 0),
                              context_length=int(ctx) if isinstance(ctx, int) else 0, logprobs=logprobs,
                              logprobs_note=why)

        with ThreadPoolExecutor(max_workers=4) as pool:
            models = tuple(pool.map(one, entries))
    return FoundServer("openai", url, True, label, problem="" if models else "serves no models", models=models)


# -- everything at once -------------------------------------------------------------------------
def probe_named(url: str, timeouts: Timeouts = Timeouts()) -> FoundServer:
    """A host the user named: Ollama first; an OpenAI-compatible server only when no Ollama answers
    (Ollama serves `/v1/models` too, and the one-token check would load every one of its models)."""
    ollama = probe_ollama(url, timeouts)
    if ollama.running:
        return ollama
    openai = probe_openai(url, timeouts)
    if openai.running:
        return openai
    return replace(ollama, problem=f"neither Ollama nor an OpenAI-compatible server answers ({ollama.problem})")


def discover(hosts: list[str] | tuple[str, ...] = (), *, timeouts: Timeouts = Timeouts(),
             openai_ports: tuple[int, ...] | None = None) -> Discovery:
    """Probe Ollama at `ollama_host()`, OpenAI-compatible servers on the loopback `openai_ports`, and
    every host the user names; all at once."""
    started = time.perf_counter()
    ollama_url = ollama_host()
    named = tuple(dict.fromkeys(normalize_url(h) for h in hosts))
    targets: list[tuple[str, str]] = [("ollama", ollama_url)]
    ports = OPENAI_PORTS if openai_ports is None else openai_ports
    targets += [("openai", f"http://127.0.0.1:{port}") for port in ports]
    targets = [(k, u) for k, u in targets if not any(same_server(u, n) for n in named)]
    targets = [t for i, t in enumerate(targets) if i == 0 or not same_server(t[1], ollama_url)]
    targets += [("named", url) for url in named]
    probes = {"ollama": probe_ollama, "openai": probe_openai, "named": probe_named}
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        servers = tuple(pool.map(lambda t: probes[t[0]](t[1], timeouts), targets))
    return Discovery(servers, time.perf_counter() - started, named)


# -- one model, for `shake teachers add --from` -------------------------------------------------
def parse_source(source: str) -> tuple[str, str, str]:
    """`ollama:MODEL` -> ("ollama", "", MODEL); `openai:URL#MODEL` -> ("openai", URL, MODEL)."""
    kind, sep, rest = source.partition(":")
    if not sep or kind not in ("ollama", "openai") or not rest:
        raise InputError(f"--from {source!r}: give ollama:MODEL or openai:URL#MODEL")
    if kind == "ollama":
        return kind, "", rest
    url, sep, model = rest.rpartition("#")
    if not sep or not url or not model:
        raise InputError(f"--from {source!r}: an OpenAI-compatible source is openai:URL#MODEL, "
                         "e.g. openai:http://127.0.0.1:8080#qwen")
    return kind, normalize_url(url), model


def inspect_source(source: str, host: str | None = None, timeouts: Timeouts = Timeouts()) -> FoundModel:
    """The one model `source` names, checked on its server; raises a one-line error when the server
    does not answer or has no such model."""
    kind, url, model = parse_source(source)
    if kind == "ollama":
        url = normalize_url(host) if host else ollama_host()
        server = probe_ollama(url, timeouts)
        wanted = {model, f"{model}:latest"}
        advice = f"`ollama pull {model}` there"
    else:
        if host:
            raise InputError("--host is for ollama: sources; an openai: source carries its URL (openai:URL#MODEL)")
        server = probe_openai(url, timeouts)
        wanted = {model}
        advice = "check the model name the server serves"
    if not server.running:
        where = "Ollama" if kind == "ollama" else "an OpenAI-compatible server"
        raise TeacherUnavailable(f"no {where} at {server.url}: {server.problem}")
    for found in server.models:
        if found.model in wanted:
            return found
    served = ", ".join(m.model for m in server.models) or "none"
    raise ModelNotFound(f"{server.url} has no model '{model}' (it has: {served}); {advice}")


# -- what is configured, and one line per model (the CLI and the app print the same) ------------
def configured_as(config: Config, found: FoundModel) -> str | None:
    """The name of the configured teacher that already runs this model on this server, if any."""
    for name, teacher in config.teachers.items():
        if teacher.backend != found.kind:
            continue
        host = teacher.host or (OLLAMA_DEFAULT_HOST if teacher.backend == "ollama" else "")
        same_model = teacher.model == found.model or (
            found.kind == "ollama" and teacher.model.removesuffix(":latest") == found.model.removesuffix(":latest"))
        if same_model and host and same_server(host, found.host):
            return name
    return None


def teacher_config(found: FoundModel, name: str) -> TeacherConfig:
    """The `[teachers.NAME]` entry for a found model: its backend, model, server and a capped context."""
    return TeacherConfig(name=name, backend=found.kind, model=found.model, host=found.host, n_ctx=found.n_ctx)


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else (f"{n / 1e6:.0f} MB" if n >= 1e6 else "")


def describe_model(found: FoundModel) -> str:
    """One line: the model and what was learned about it."""
    facts = [_size(found.size), found.family, found.parameter_size, found.quantization,
             f"context {found.context_length}" if found.context_length else "",
             f"log-probabilities: {found.logprobs}"]
    if found.blob_status:
        facts.append(f"GGUF: {found.blob_status}")
    return f"{found.model}  " + "  ".join(f for f in facts if f)


def describe_server(server: FoundServer) -> str:
    label = server.label or ("Ollama" if server.kind == "ollama" else "OpenAI-compatible server")
    line = f"{label} at {server.url}"
    if server.problem:
        line += f": {server.problem}"
    return line + (f" ({server.note})" if server.note else "")


def add_command(config: Config, found: FoundModel) -> str:
    return f"shake teachers add {free_name(slug(found.model), config.teachers)} --from {found.source}"


def report_lines(config: Config, found: Discovery) -> list[str]:
    """What `shake teachers --discover` prints: the worker's teachers, then every server and model."""
    lines = [f"worker's teachers: {' -> '.join(config.agents['worker'])}"]
    for server in found.servers:
        lines.append(describe_server(server))
        for model in server.models:
            name = configured_as(config, model)
            lines.append(f"  {describe_model(model)}" + (f"  [configured as '{name}']" if name else ""))
            notes = [model.note] + ([model.logprobs_note] if model.logprobs_note not in server.note else [])
            lines += [f"      {n}" for n in notes if n]
            if not name:
                lines.append(f"      add: {add_command(config, model)}")
    lines.append(f"(probed in {found.seconds:.2f} s)")
    return lines
