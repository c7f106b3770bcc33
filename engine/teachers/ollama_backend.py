"""Ollama (server >= 0.12.11 for log-probabilities): `/api/chat` NDJSON over httpx, the rest through
the official `ollama` client.

Requests carry `logprobs: true, top_logprobs: N` (N in 0..20), an explicit `num_ctx` (Ollama's own
default context is small), explicit timeouts and `think` (the teacher's `think` setting; Ollama turns
thinking on by default for every model with the `thinking` capability, server/routes.go chat handler).
Chat is parsed here, not by the client, because the client's `TokenLogprob` has no `bytes` field
(ollama-python `_types.py`) and Ollama's `token` is JSON text, where a piece of a character becomes
U+FFFD. Ollama sends no ids: tokens are recorded by their bytes with id -1, and the trainer aligns them
to the student by byte offsets. Each chunk's entries are spelled against its own `message.thinking` +
`message.content` and split where the answer begins (`entries.Transcript`): the reasoning's tokens label
only `Generation.thinking` (both passes of a thinking model with `format` included), and parser-stripped
tags and Ollama >= 0.30's merged or dropped entries (it forwards llama-server's per-sent-text entries,
llm/llama_server.go) never label bytes that are not theirs.

Constrained answers: Ollama enforces a JSON schema given as `format` (structured outputs), so its
teachers answer in each agent's JSON form (`constrain = "auto"` or "json"). The log-probabilities are
the model's distribution before the sampler, where the schema's grammar is applied: before v0.30 the
runner computed them from the raw logits (`runner/common/logprob.go` `CalculateLogprobs`); from v0.30
Ollama asks its bundled llama-server with `n_probs`, whose `post_sampling_probs` defaults to false
(a softmax of `llama_get_logits_ith`, `server-common.cpp`). Read from the sources, not run here (no Ollama
server can run on the development machine).

Ollama itself cannot score a given text. But when the server runs on this machine, the GGUF it runs
is on this disk (`ollama_blobs.py` reads Ollama's manifests): then `score` opens that very file with
the embedded llama.cpp backend, which gives exact teacher-forced log-probabilities of the same weights
(`can_score` is true). A server elsewhere, or a blob this user cannot read: `ScoringUnsupported`.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import ollama

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, ModelNotFound, ScoringUnsupported, TeacherError, TeacherUnavailable
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.base import Constraint, Generation, Message, ModelIdentity, SamplingParams, TokenCallback
from engine.teachers.entries import Transcript
from engine.teachers.retry import Retryable, broken_stream, check_stream_status, with_retries

DEFAULT_HOST = "http://127.0.0.1:11434"


def _bytes(entry: dict) -> bytes:
    """An entry's raw bytes: `bytes` where Ollama sends it (>= 0.12.11; `token` is JSON text, so a piece of a
    character arrives there as U+FFFD, api/types.go `TokenLogprob`), else the text."""
    raw = entry.get("bytes")
    return bytes(raw) if raw is not None else str(entry.get("token", "")).encode("utf-8")


def _token(entry: dict) -> TokenLogprob:
    top = [TopLogprob(-1, _bytes(alt), float(alt["logprob"])) for alt in (entry.get("top_logprobs") or [])
           if alt.get("logprob") is not None]
    return TokenLogprob(-1, _bytes(entry), float(entry["logprob"]), top)


class _StatusError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status_code = status
        self.error = error


def _status_error(resp: httpx.Response) -> Exception:
    """Ollama's `{"error": ...}` answer as the error `_fail` and the retries understand."""
    try:
        error = str(resp.json().get("error", resp.text))
    except ValueError:
        error = resp.text[:300]
    return _StatusError(resp.status_code, error)


def base_url(host: str) -> str:
    """The server's address exactly as the `ollama` client reads `host` (its own parser, as discovery uses)."""
    from ollama._client import _parse_host

    return _parse_host(host).rstrip("/")


def is_loopback(host: str) -> bool:
    name = (httpx.URL(host if "://" in host else f"http://{host}").host or "").lower()
    return name in ("localhost", "::1", "0.0.0.0") or name.startswith("127.")


class OllamaTeacher:
    def __init__(self, config: TeacherConfig) -> None:
        self.config = config
        self.answer_form = config.answer_form
        self.host = config.host or DEFAULT_HOST
        self.client = ollama.Client(
            host=self.host,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s, read=config.chunk_timeout_s),
        )
        # Chat goes over httpx: the `ollama` client's `TokenLogprob` has no `bytes` and drops them.
        self.base = base_url(self.host)
        self.http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s, read=config.chunk_timeout_s))
        self.identity = ModelIdentity(config.name, "ollama", config.model)
        self._blob_scorer = None
        self._blob_looked = False

    def _scorer(self):
        """The embedded backend on the GGUF blob this server runs, when it is on this disk."""
        if not self._blob_looked:
            self._blob_looked = True
            if is_loopback(self.host):
                from engine.teachers.embedded import EmbeddedTeacher
                from engine.teachers.ollama_blobs import blob_readable, find_ollama_blob

                blob = find_ollama_blob(self.config.model)
                if blob is not None and blob_readable(blob):
                    self._blob_scorer = EmbeddedTeacher(TeacherConfig(
                        name=self.config.name, backend="embedded", model=str(blob), n_ctx=self.config.n_ctx,
                        top_logprobs=self.config.top_logprobs, seed=self.config.seed, n_threads=self.config.n_threads))
        return self._blob_scorer

    @property
    def can_score(self) -> bool:
        return self._scorer() is not None

    def _fail(self, err: Exception) -> TeacherError:
        where = f"Ollama teacher '{self.config.name}' at {self.host}"
        if isinstance(err, ConnectionError) or isinstance(err, httpx.ConnectError):
            return TeacherUnavailable(f"{where} is not reachable; start it with `ollama serve`")
        if isinstance(err, httpx.TimeoutException):
            return TeacherUnavailable(f"{where} timed out ({type(err).__name__})")
        if isinstance(err, httpx.TransportError):
            return TeacherUnavailable(f"{where}: the connection broke ({type(err).__name__}: {err})")
        if isinstance(err, (ollama.ResponseError, _StatusError)):
            if err.status_code == 404:
                return ModelNotFound(f"{where} has no model '{self.config.model}'; run `ollama pull {self.config.model}`")
            if err.status_code == 503:
                return TeacherUnavailable(f"{where} is busy or loading (HTTP 503)")
            return TeacherError(f"{where}: {err.error} (HTTP {err.status_code})")
        return TeacherError(f"{where} failed: {err}")

    def health(self) -> None:
        try:
            info = self.client.show(self.config.model)
        except Exception as err:  # the client raises builtins and httpx errors alike
            raise self._fail(err) from None
        details = getattr(info, "details", None)
        quant = getattr(details, "quantization_level", "") or ""
        digest = ""
        try:
            for model in self.client.list().models:
                if model.model == self.config.model or model.model == f"{self.config.model}:latest":
                    digest = model.digest or ""
        except Exception:
            pass  # the digest is provenance, not a requirement
        self.identity = ModelIdentity(self.config.name, "ollama", self.config.model, digest, quant)

    def generate(
        self,
        messages: list[Message],
        sampling: SamplingParams,
        *,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        constraint: Constraint | None = None,
    ) -> Generation:
        started = time.perf_counter()
        if constraint is not None and self.answer_form != "json":
            constraint = None
        where = f"Ollama teacher '{self.config.name}' at {self.host}"
        options = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "num_predict": sampling.max_tokens,
            "num_ctx": self.config.n_ctx,
            "seed": sampling.seed,
        }

        payload = {
            "model": self.config.model,
            "messages": messages,
            "stream": True,
            "options": options,
            "logprobs": sampling.top_logprobs > 0,
            **({"top_logprobs": sampling.top_logprobs} if sampling.top_logprobs > 0 else {}),
            **({"format": constraint.json_schema} if constraint is not None else {}),
            **({} if self.config.think == "server" else {"think": self.config.think == "on"}),
        }

        def attempt() -> Generation:
            said = Transcript()
            finish = None
            try:
                with self.http.stream("POST", f"{self.base}/api/chat", json=payload) as resp:
                    check_stream_status(resp, f"{where} is busy or loading (HTTP 503)", _status_error)
                    for line in resp.iter_lines():
                        if not line.strip():
                            continue
                        if cancel is not None and cancel.is_set():
                            raise GenerationCancelled("generation cancelled")
                        if time.perf_counter() - started > self.config.timeout_s:
                            raise TeacherUnavailable(
                                f"{where} did not finish within {self.config.timeout_s:.0f} s; the partial answer was discarded")
                        chunk = json.loads(line)
                        if "error" in chunk:  # an error after the stream started (routes.go writes it as a line)
                            if said.parts:
                                raise TeacherError(f"{where} reported an error mid-answer: {chunk['error']}; "
                                                   "the partial answer was discarded")
                            raise TeacherError(f"{where}: {chunk['error']}")
                        message = chunk.get("message") or {}
                        piece = message.get("content") or ""
                        said.add(piece, message.get("thinking") or "", [_token(e) for e in chunk.get("logprobs") or []])
                        if piece and on_token:
                            on_token(piece)
                        if chunk.get("done"):
                            finish = "length" if chunk.get("done_reason") == "length" else "stop"
            except (GenerationCancelled, TeacherError, Retryable):
                raise
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                raise Retryable(f"{where} is not reachable; start it with `ollama serve` ({type(err).__name__})") from None
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError) as err:
                raise broken_stream(where, len(said.parts), err, self.config.chunk_timeout_s) from None
            except json.JSONDecodeError as err:
                raise TeacherError(f"{where} sent a malformed stream line ({err}); the partial answer was discarded") from None
            except Exception as err:
                raise self._fail(err) from None
            if finish is None:  # the stream ended without its final `done` chunk
                raise broken_stream(where, len(said.parts), None, self.config.chunk_timeout_s)
            return Generation(said.text, said.tokens, self.identity, sampling, finish, time.perf_counter() - started,
                              constraint=constraint.name if constraint else None, thinking=said.thinking,
                              thinking_tokens=said.thinking_tokens)

        return with_retries(attempt, self.config.retries, cancel=cancel)

    def score(self, messages: list[Message], response: str, *, top_logprobs: int) -> TokenLogprobs:
        scorer = self._scorer()
        if scorer is None:
            raise ScoringUnsupported(
                f"Ollama teacher '{self.config.name}' cannot score a given text: Ollama has no teacher-forced "
                f"scoring, and the model file of '{self.config.model}' is not readable on this machine "
                "(OLLAMA_MODELS, ~/.ollama/models); use an embedded teacher to re-score"
            )
        return scorer.score(messages, response, top_logprobs=top_logprobs)

    def close(self) -> None:
        self.client.close()
        self.http.close()
        if self._blob_scorer is not None:
            self._blob_scorer.close()
