"""Ollama through the official `ollama` client (server >= 0.12.11 for log-probabilities).

Requests carry `logprobs=True, top_logprobs=N` (N in 0..20), an explicit `num_ctx` (Ollama's own
default context is small) and explicit timeouts (the client has none by default). Ollama returns
token strings without ids, and the client drops the `bytes` field, so tokens are recorded by their
UTF-8 text with id -1; the trainer aligns them to the student by byte offsets.

Constrained answers: Ollama enforces a JSON schema given as `format` (structured outputs), so its
teachers answer in each agent's JSON form (`constrain = "auto"` or "json"). Its runner computes the
log-probabilities from the model's logits before its sampler, which is where the schema's grammar
is applied (ollama/ollama `runner/common/logprob.go`, `CalculateLogprobs(logits, ...)`): the model's
distribution before the mask, as the KD term assumes. Read from Ollama's source, not tested here
(no Ollama server can run on the development machine). One revision of that file also divides the
logits by the sampling temperature first; a teacher meant for distillation on such a version
should sample at temperature 1 or 0.

Ollama itself cannot score a given text. But when the server runs on this machine, the GGUF it runs
is on this disk (`ollama_blobs.py` reads Ollama's manifests): then `score` opens that very file with
the embedded llama.cpp backend, which gives exact teacher-forced log-probabilities of the same weights
(`can_score` is true). A server elsewhere, or a blob this user cannot read: `ScoringUnsupported`.
"""

from __future__ import annotations

import threading
import time

import httpx
import ollama

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, ModelNotFound, ScoringUnsupported, TeacherError, TeacherUnavailable
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.base import Constraint, Generation, Message, ModelIdentity, SamplingParams, TokenCallback
from engine.teachers.retry import Retryable, broken_stream, with_retries

DEFAULT_HOST = "http://127.0.0.1:11434"


def _token(entry) -> TokenLogprob:
    top = [TopLogprob(-1, alt.token.encode("utf-8"), float(alt.logprob)) for alt in (entry.top_logprobs or [])]
    return TokenLogprob(-1, entry.token.encode("utf-8"), float(entry.logprob), top)


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
        if isinstance(err, ollama.ResponseError):
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

        def attempt() -> Generation:
            parts: list[str] = []
            tokens: list[TokenLogprob] = []
            finish = None
            try:
                stream = self.client.chat(
                    model=self.config.model,
                    messages=messages,
                    stream=True,
                    options=options,
                    logprobs=sampling.top_logprobs > 0,
                    top_logprobs=sampling.top_logprobs or None,
                    format=constraint.json_schema if constraint is not None else None,
                )
                for chunk in stream:
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled("generation cancelled")
                    if time.perf_counter() - started > self.config.timeout_s:
                        raise TeacherUnavailable(
                            f"{where} did not finish within {self.config.timeout_s:.0f} s; the partial answer was discarded")
                    piece = chunk.message.content or ""
                    if piece:
                        parts.append(piece)
                        if on_token:
                            on_token(piece)
                    tokens.extend(_token(entry) for entry in (chunk.logprobs or []))
                    if chunk.done:
                        finish = "length" if chunk.done_reason == "length" else "stop"
            except (GenerationCancelled, TeacherError):
                raise
            except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as err:
                raise Retryable(f"{where} is not reachable; start it with `ollama serve` ({type(err).__name__})") from None
            except ollama.ResponseError as err:
                if err.status_code == 503:
                    raise Retryable(f"{where} is busy or loading (HTTP 503)") from None
                if parts and err.status_code == -1:
                    raise TeacherError(f"{where} reported an error mid-answer: {err.error}; "
                                       "the partial answer was discarded") from None
                raise self._fail(err) from None
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError) as err:
                raise broken_stream(where, len(parts), err, self.config.chunk_timeout_s) from None
            except Exception as err:
                raise self._fail(err) from None
            if finish is None:  # the stream ended without its final `done` chunk
                raise broken_stream(where, len(parts), None, self.config.chunk_timeout_s)
            return Generation("".join(parts), tokens, self.identity, sampling, finish, time.perf_counter() - started,
                              constraint=constraint.name if constraint else None)

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
        if self._blob_scorer is not None:
            self._blob_scorer.close()
