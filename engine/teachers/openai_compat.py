"""OpenAI-compatible servers: llama.cpp's `llama-server`, `python -m llama_cpp.server`, vLLM.

Chat completions are streamed over `httpx` with `logprobs: true, top_logprobs: N`; each chunk's
`choices[0].logprobs.content` carries `{token, logprob, bytes, top_logprobs}` (llama.cpp adds `id`).
A chat endpoint cannot score a given text, so `score` raises `ScoringUnsupported`.

Constrained answers (`constrain`): "grammar" sends the agent's GBNF as `grammar`, which llama.cpp's
`llama-server` and `python -m llama_cpp.server` both apply; "json" sends
`response_format: {"type": "json_object", "schema": ...}`, the one form both llama.cpp servers read as a
schema (llama-cpp-python 0.3.36 types `response_format.type` as "text" | "json_object" and answers
`json_schema` with a validation error (HTTP 500), `llama_types.py` `ChatCompletionRequestResponseFormat`; llama-server reads
`schema` of a `json_object`, `server-common.cpp` `oaicompat_chat_params_parse`). A server that only
knows plain JSON mode (vLLM) answers some JSON object, and the strict parsers still judge the answer.

Entries: each chunk's entries are spelled against its own reasoning + `delta.content` and split where the
answer begins (`entries.Transcript`), so llama-server's per-sent-text entries, llama-cpp-python's empty
pieces of multi-byte characters and reasoning tokens never label bytes that are not theirs: the answer's
soft labels spell `Generation.text`, the reasoning's `Generation.thinking`. Thinking (`think`): "off" and "on" send
`chat_template_kwargs: {"enable_thinking": ...}` (read by llama-server and vLLM; Qwen3-style
templates); the reasoning arrives as `delta.reasoning_content` (llama-server `server-task.cpp`
`to_json_oaicompat_chat`; vLLM older releases) or `delta.reasoning` and is kept as `Generation.thinking`.
Both llama.cpp servers report log-probabilities of the logits before their samplers (the grammar
among them): the model's own distribution, as the embedded backend records it.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from engine.config import TeacherConfig
from engine.errors import (
    GenerationCancelled,
    ModelNotFound,
    ScoringUnsupported,
    TeacherError,
    TeacherUnavailable,
)
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.base import Constraint, Generation, Message, ModelIdentity, SamplingParams, TokenCallback
from engine.teachers.entries import Transcript
from engine.teachers.retry import Retryable, broken_stream, check_stream_status, with_retries


def token_bytes(entry: dict) -> bytes:
    raw = entry.get("bytes")
    if raw:
        return bytes(raw)
    return str(entry.get("token", "")).encode("utf-8")


def parse_token_entry(entry: dict) -> TokenLogprob:
    top = [
        TopLogprob(int(alt.get("id", -1)), token_bytes(alt), float(alt["logprob"]))
        for alt in entry.get("top_logprobs") or []
        if alt.get("logprob") is not None
    ]
    return TokenLogprob(int(entry.get("id", -1)), token_bytes(entry), float(entry["logprob"]), top)


def http_status_error(resp: httpx.Response) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)


def constraint_fields(constraint: Constraint, form: str) -> dict:
    """The request fields that hold an answer to its shape on an OpenAI-compatible server."""
    if form == "grammar":
        return {"grammar": constraint.gbnf}
    return {"response_format": {"type": "json_object", "schema": constraint.json_schema}}


def think_fields(think: str) -> dict:
    """The request fields of a `think` setting ("server": none, the server's own default)."""
    if think == "server":
        return {}
    return {"chat_template_kwargs": {"enable_thinking": think == "on"}}


class OpenAICompatTeacher:
    can_score = False

    def __init__(self, config: TeacherConfig) -> None:
        if not config.host:
            raise TeacherError(f"teacher '{config.name}' (openai backend) needs host = \"http://HOST:PORT\"")
        self.config = config
        self.answer_form = config.answer_form
        self.base = config.host.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[:-3]
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s, read=config.chunk_timeout_s),
        )
        self.identity = ModelIdentity(config.name, "openai", config.model)

    def _fail(self, err: Exception) -> TeacherError:
        where = f"teacher '{self.config.name}' at {self.base}"
        if isinstance(err, httpx.ConnectError):
            return TeacherUnavailable(f"{where} is not reachable (connection refused); is the server running?")
        if isinstance(err, httpx.TimeoutException):
            return TeacherUnavailable(f"{where} timed out ({type(err).__name__})")
        if isinstance(err, httpx.HTTPStatusError):
            status = err.response.status_code
            body = err.response.text[:300]
            if status == 404 and "model" in body.lower():
                return ModelNotFound(f"{where} has no model '{self.config.model}': {body}")
            if status == 503:
                return TeacherUnavailable(f"{where} is still loading (HTTP 503); try again shortly")
            return TeacherError(f"{where} answered HTTP {status}: {body}")
        return TeacherError(f"{where} failed: {err}")

    def health(self) -> None:
        try:
            resp = self.client.get(f"{self.base}/health", timeout=self.config.connect_timeout_s)
            if resp.status_code == 503:
                raise TeacherUnavailable(f"teacher '{self.config.name}' at {self.base} is still loading (HTTP 503)")
            resp = self.client.get(f"{self.base}/v1/models", timeout=self.config.connect_timeout_s)
            resp.raise_for_status()
        except httpx.HTTPError as err:
            raise self._fail(err) from None
        served = [m.get("id") for m in resp.json().get("data", [])]
        if served and self.config.model not in served:
            raise ModelNotFound(
                f"teacher '{self.config.name}' at {self.base} has no model '{self.config.model}' "
                f"(served: {', '.join(map(str, served))})"
            )

    def generate(
        self,
        messages: list[Message],
        sampling: SamplingParams,
        *,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        constraint: Constraint | None = None,
    ) -> Generation:
        payload = {
            "model": self.config.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,  # llama.cpp and vLLM accept it; OpenAI proper ignores unknown fields
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed,
            "stream": True,
            "logprobs": sampling.top_logprobs > 0,
        }
        if sampling.top_logprobs > 0:
            payload["top_logprobs"] = sampling.top_logprobs
        if constraint is not None and self.answer_form == "off":
            constraint = None
        if constraint is not None:
            payload.update(constraint_fields(constraint, self.answer_form))
        payload.update(think_fields(self.config.think))
        started = time.perf_counter()
        where = f"teacher '{self.config.name}' at {self.base}"

        def attempt() -> Generation:
            said = Transcript()
            parts = said.parts
            finish = None
            try:
                with self.client.stream("POST", f"{self.base}/v1/chat/completions", json=payload) as resp:
                    check_stream_status(resp, f"{where} is still loading (HTTP 503)", http_status_error)
                    for line in resp.iter_lines():
                        if cancel is not None and cancel.is_set():
                            raise GenerationCancelled("generation cancelled")
                        if time.perf_counter() - started > self.config.timeout_s:
                            raise TeacherUnavailable(
                                f"{where} did not finish within {self.config.timeout_s:.0f} s; the partial answer was discarded")
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            finish = finish or "stop"
                            break
                        chunk = json.loads(data)
                        if "error" in chunk:
                            raise TeacherError(f"{where} reported an error mid-answer: {chunk['error']}; "
                                               "the partial answer was discarded")
                        choice = (chunk.get("choices") or [{}])[0]
                        delta = choice.get("delta") or {}
                        piece = delta.get("content") or ""
                        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
                        entries = [parse_token_entry(e) for e in ((choice.get("logprobs") or {}).get("content") or [])]
                        said.add(piece, thinking, entries)
                        if piece and on_token:
                            on_token(piece)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                raise Retryable(f"{where} is not reachable ({type(err).__name__}); is the server running?") from None
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError) as err:
                raise broken_stream(where, len(parts), err, self.config.chunk_timeout_s) from None
            except httpx.HTTPError as err:
                raise self._fail(err) from None
            except json.JSONDecodeError as err:
                raise TeacherError(f"{where} sent a malformed stream chunk ({err}); the partial answer was discarded") from None
            if finish is None:  # no finish_reason and no [DONE]: the stream was cut
                raise broken_stream(where, len(parts), None, self.config.chunk_timeout_s)
            return Generation(said.text, said.tokens, self.identity, sampling, finish, time.perf_counter() - started,
                              constraint=constraint.name if constraint else None, thinking=said.thinking,
                              thinking_tokens=said.thinking_tokens)

        return with_retries(attempt, self.config.retries, cancel=cancel)

    def score(self, messages: list[Message], response: str, *, top_logprobs: int) -> TokenLogprobs:
        raise ScoringUnsupported(
            f"teacher '{self.config.name}' (OpenAI-compatible chat API) cannot score a given text; "
            "use an embedded teacher for teacher-forced scoring"
        )

    def close(self) -> None:
        self.client.close()
