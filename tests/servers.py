"""Servers on loopback for backend tests.

`FakeOllama` answers in Ollama's documented v0.12.11 shape (`/api/chat` NDJSON stream with
`logprobs`/`top_logprobs`, `/api/show`, `/api/tags`, `/api/version`; docs/api.md and api/types.go
in ollama/ollama); no Ollama server can be installed here.
`llama_cpp_server` starts the real `python -m llama_cpp.server` on the bundled model.

With `script` set (a `Script`: a model's tokens, stop strings, a thinking model's reasoning), both
stand-ins send what the real servers send for those tokens, by `flavor` (each behaviour cites the
upstream function it follows; shared/notes/teacher-wire-audit.md names the lines):

- FakeOpenAI "llama-server": one entry per *sent text* (`llama_server_partials`), reasoning as
  `delta.reasoning_content`, alternatives with their own bytes and `logarithm(0)` = -FLT_MAX.
- FakeOllama "0.12" (v0.12.11-0.24): one entry per token with the right `bytes` and JSON `token` text
  (U+FFFD for a piece of a character), `message.thinking`, and the two passes of `format` with thinking;
  a response that crosses the closing tag gives one chunk with both `thinking` and `content`.
- FakeOllama "0.30" (llama-server inside): llama-server's per-sent-text entries, the held-back ones
  dropped, bytes rebuilt from UTF-8-truncated text (byte-fallback alternatives become "").
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


# -- a model's tokens, and what each server makes of them ---------------------------------------
FLT_LOWEST = -3.4028234663852886e38  # llama.cpp server-task.cpp `completion_token_output::logarithm(0)`


@dataclass(frozen=True)
class ServerToken:
    """One sampled token: its own bytes (possibly part of a character) and its top alternatives."""

    id: int
    piece: bytes
    logprob: float
    alts: tuple[tuple[int, bytes, float], ...]  # (id, bytes, logprob), best first


@dataclass
class Script:
    tokens: list[ServerToken]
    stops: tuple[str, ...] = ()
    thinking: list[ServerToken] | None = None  # a thinking model's reasoning, before the answer
    two_pass: bool = False  # Ollama with `format` on a thinking model: think free, then answer constrained
    crossing: bool = False  # the reasoning's last text and the answer's first come in one server response


def server_tokens(text: str, cuts: list[int] | None = None, *, sampled_in_top: bool = True, start_id: int = 1000,
                  base: float = -0.2) -> list[ServerToken]:
    """`text` as tokens cut after the given byte offsets (default: every 3 bytes, which splits multi-byte
    characters). Each has the sampled token among its alternatives (unless `sampled_in_top` is false), a
    byte-fallback alternative (a lone UTF-8 lead byte) and an alternative whose probability underflowed."""
    data = text.encode("utf-8")
    cuts = sorted({c for c in (cuts if cuts is not None else range(3, len(data), 3)) if 0 < c < len(data)})
    bounds = [0, *cuts, len(data)]
    out = []
    for i in range(len(bounds) - 1):
        piece, lp = data[bounds[i]:bounds[i + 1]], base - 0.01 * (i % 7)
        own = ((start_id + i, piece, lp),) if sampled_in_top else ()
        out.append(ServerToken(start_id + i, piece, lp,
                               own + ((7, b"\xe2", lp - 1.5), (8, b" alt", lp - 2.0), (9, b"zz", FLT_LOWEST))))
    return out


def _incomplete_utf8(data: bytes) -> bool:
    """llama.cpp `validate_utf8(text) < text.size()`: the text ends inside a character."""
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError as err:
        return err.start >= len(data) - 3 and err.reason == "unexpected end of data"


def _holds_stop_prefix(tail: bytes, stops: tuple[bytes, ...]) -> bool:
    return any(tail.endswith(stop[:n]) for stop in stops for n in range(min(len(stop), len(tail)), 0, -1))


def llama_server_partials(tokens: list[ServerToken], stops: tuple[str, ...]) -> list[tuple[bytes, ServerToken]]:
    """The partial results llama-server sends for these tokens: (text_to_send, token), following
    `server_context::process_token` (tools/server/server-context.cpp): a token that leaves the text inside
    a character sends nothing (it is inside `if (!incomplete)`); a full stop string cuts the text and ends
    the generation; a possible stop prefix is held back (`text_to_send = ""`); otherwise everything not yet
    sent goes out with this token's probabilities."""
    stop_bytes = tuple(s.encode("utf-8") for s in stops)
    generated, n_sent, out = b"", 0, []
    for tok in tokens:
        generated += tok.piece
        if _incomplete_utf8(generated):
            continue
        tail = generated[n_sent:]
        found = [tail.find(s) for s in stop_bytes if s in tail]
        if found:
            generated = generated[: n_sent + min(found)]
            out.append((generated[n_sent:], tok))
            return out
        if _holds_stop_prefix(tail, stop_bytes):
            out.append((b"", tok))
            continue
        out.append((tail, tok))
        n_sent = len(generated)
    return out


def expected_text(script: Script) -> str:
    """The answer both servers end up sending for `script`."""
    return b"".join(text for text, _ in llama_server_partials(script.tokens, script.stops)).decode("utf-8")


def _utf8_prefix(data: bytes) -> str:
    """llama-server's `token` field: the bytes cut to valid UTF-8 (server-task.cpp `validate_utf8`)."""
    for end in range(len(data), -1, -1):
        try:
            return data[:end].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return ""


def _llama_server_entry(text: bytes, tok: ServerToken, top: int) -> dict:
    """`probs_vector_to_json` (server-task.cpp): the entry's token/bytes are the sent text, the
    alternatives' are their own pieces."""
    return {"id": tok.id, "token": _utf8_prefix(text), "bytes": list(text), "logprob": tok.logprob,
            "top_logprobs": [{"id": i, "token": _utf8_prefix(b), "bytes": list(b), "logprob": lp}
                             for i, b, lp in tok.alts[:top]]}


def _ollama_entry(tok: ServerToken, top: int, *, text: bytes | None = None) -> dict:
    """Ollama's `Logprob` (api/types.go). v0.12.11-0.24: `bytes` from the raw piece, `token` its JSON text
    (invalid UTF-8 becomes U+FFFD in Go's encoding/json; server/logprob.go). v0.30 passes `text`, llama-server's
    sent text: `token` is its UTF-8-truncated form and `bytes` are rebuilt from that (server/logprob.go)."""
    if text is None:
        entry = {"token": tok.piece.decode("utf-8", errors="replace"), "bytes": list(tok.piece), "logprob": tok.logprob}
        alts = [{"token": b.decode("utf-8", errors="replace"), "bytes": list(b), "logprob": lp} for _, b, lp in tok.alts]
    else:
        token = _utf8_prefix(text)
        entry = {"token": token, "bytes": list(token.encode()), "logprob": tok.logprob}
        alts = [{"token": _utf8_prefix(b), "bytes": list(_utf8_prefix(b).encode()), "logprob": lp} for _, b, lp in tok.alts]
    return {**entry, "top_logprobs": alts[:top]} if top else entry


CLOSE_TAG = ServerToken(2, b"</think>", -0.01, ((2, b"</think>", -0.01),))


def _ollama_releases(tokens: list[ServerToken], stops: tuple[str, ...], flavor: str, top: int) -> list[tuple[str, list[dict]]]:
    """(text, logprobs) of each runner response Ollama turns into a chunk, for these tokens."""
    partials = llama_server_partials(tokens, stops)
    if flavor == "0.30":
        # llm/llama_server.go: `if lsResp.Content != "" && !lsResp.Stop`; the rest is dropped with its logprobs
        return [(text.decode("utf-8"), [_ollama_entry(tok, top, text=text)]) for text, tok in partials if text]
    # v0.12.11-0.24: the runner releases text when it is whole, with one entry per token since the last release.
    out: list[tuple[str, list[dict]]] = []
    by_id = {tok.id: i for i, tok in enumerate(tokens)}
    done = 0
    for text, tok in partials:
        upto = by_id[tok.id] + 1
        if text:
            out.append((text.decode("utf-8"), [_ollama_entry(t, top) for t in tokens[done:upto]]))
            done = upto
    return out


def ollama_chunks(script: Script, flavor: str, top: int, *, with_format: bool) -> list[tuple[str, str, list[dict]]]:
    """(content, thinking, logprobs) of each `/api/chat` chunk Ollama streams for `script`."""
    answer = _ollama_releases(script.tokens, script.stops, flavor, top)
    if not script.thinking:
        return [(text, "", entries) for text, entries in answer]
    # routes.go chat handler: the reasoning goes to `message.thinking`; every chunk with logprobs is sent,
    # also the one whose tag the thinking parser removed (content and thinking both empty).
    thought = _ollama_releases(script.thinking, (), flavor, top)
    close = [_ollama_entry(CLOSE_TAG, top)]
    two_pass = script.two_pass and with_format and script.tokens
    if script.crossing and not two_pass and thought and answer:
        # thinking/parser.go `AddContent`: a runner response whose text crosses the closing tag gives both
        # halves, so one chunk carries the reasoning's last text, the answer's first, and the logprobs of both
        # and of the tag between them.
        (last, last_entries), (first, first_entries) = thought[-1], answer[0]
        return ([("", text, entries) for text, entries in thought[:-1]]
                + [(first, last, last_entries + close + first_entries)]
                + [(text, "", entries) for text, entries in answer[1:]])
    out = [("", text, entries) for text, entries in thought] + [("", "", close)]
    if two_pass:
        # routes.go: pass 1 ran without `format`; its first answer token ends it, and its logprobs
        # were already streamed, before pass 2 starts over under the schema.
        out.append(("", "", [_ollama_entry(script.tokens[0], top)]))
    return out + [(text, "", entries) for text, entries in answer]


def openai_chunks(script: Script, top: int) -> list[dict]:
    """The `choices[0]` of each chunk llama-server streams for `script` (`to_json_oaicompat_chat`,
    server-task.cpp): logprobs ride on the result's last delta, and a result with no delta sends none.
    The reasoning is `delta.reasoning_content`; the closing tag is the parser's and sends no delta."""
    thought = [(text, tok) for text, tok in llama_server_partials(script.thinking or [], ()) if text]
    answer = [(text, tok) for text, tok in llama_server_partials(script.tokens, script.stops) if text]
    out = []
    crossing = script.crossing and thought and answer
    for i, (text, tok) in enumerate(thought):
        if crossing and i == len(thought) - 1:
            # One result whose sent text crosses the tag (its last token was held back): a reasoning delta and
            # a content delta, the entry (bytes: the whole sent text) on the last one.
            first_text, first_tok = answer[0]
            out.append({"delta": {"reasoning_content": text.decode("utf-8")}})
            out.append({"delta": {"content": first_text.decode("utf-8")},
                        "logprobs": {"content": [_llama_server_entry(text + CLOSE_TAG.piece + first_text, first_tok, top)]}})
            answer = answer[1:]
            break
        out.append({"delta": {"reasoning_content": text.decode("utf-8")},
                    "logprobs": {"content": [_llama_server_entry(text, tok, top)]}})
    for text, tok in answer:
        out.append({"delta": {"content": text.decode("utf-8")},
                    "logprobs": {"content": [_llama_server_entry(text, tok, top)]}})
    return out


class _JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _LoopbackServer:
    """Serves a handler class on 127.0.0.1 in a thread, for the length of a `with` block."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], port: int) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class OllamaModel:
    """What the stand-in says about one pulled model in `/api/tags` and `/api/show`."""

    name: str
    family: str = "qwen2"
    parameter_size: str = "7.6B"
    quantization: str = "Q4_K_M"
    context_length: int = 32768
    size: int = 4683075271
    digest: str = "0a8c266910232fd3291e71e5ba1e058cc5af9d411192cf88b6d30e92b6e73163"
    capabilities: tuple[str, ...] = ("completion",)
    blob: str = "/usr/share/ollama/.ollama/models/blobs/sha256-0a8c2669"  # the Modelfile's FROM line
    remote_host: str = ""  # a cloud model

    def tags_entry(self) -> dict:
        entry = {"name": self.name, "model": self.name, "modified_at": "2026-01-01T00:00:00Z", "size": self.size,
                 "digest": self.digest,
                 "details": {"parent_model": "", "format": "gguf", "family": self.family, "families": [self.family],
                             "parameter_size": self.parameter_size, "quantization_level": self.quantization}}
        if self.remote_host:
            entry["remote_host"] = self.remote_host
        return entry

    def show(self) -> dict:
        return {"modelfile": f'# Modelfile generated by "ollama show"\nFROM {self.blob}\nTEMPLATE """{{{{ .Prompt }}}}"""\n',
                "parameters": 'stop "<|im_end|>"', "template": "{{ .Prompt }}",
                "details": {"parent_model": "", "format": "gguf", "family": self.family, "families": [self.family],
                            "parameter_size": self.parameter_size, "quantization_level": self.quantization},
                "model_info": {"general.architecture": self.family, f"{self.family}.context_length": self.context_length},
                "capabilities": list(self.capabilities), "modified_at": "2026-01-01T00:00:00Z"}


class FakeOllama(_LoopbackServer):
    def __init__(self, model: str = "qwen2.5-coder:7b", reply: list[str] | None = None, port: int = 0, *,
                 more: list[OllamaModel] | None = None, version: str = "0.13.0") -> None:
        self.model = model
        self.more = list(more or [])  # further pulled models, listed after `model`
        self.version = version
        self.reply = reply or ["Hel", "lo", " world"]
        self.requests: list[dict] = []
        self.mode = "ok"  # ok | error_mid_stream | cut | slow
        self.fail_first = 0  # answer 503 (loading) to this many chat requests first
        self.script: Script | None = None  # when set: stream these tokens as `flavor` does
        self.flavor = "0.12"  # "0.12" (v0.12.11-0.24) | "0.30" (llama-server inside)
        outer = self

        class Handler(_JsonHandler):
            def _known(self, name):
                names = [outer.model] + [m.name for m in outer.more]
                return name in names or name in [n + ":latest" for n in names]

            def do_GET(self):
                if self.path == "/api/tags":
                    first = {"name": outer.model, "model": outer.model, "digest": "sha256:abc123",
                             "size": 1, "modified_at": "2026-01-01T00:00:00Z"}
                    self._json(200, {"models": [first] + [m.tags_entry() for m in outer.more]})
                elif self.path == "/api/version":
                    self._json(200, {"version": outer.version})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                outer.requests.append({"path": self.path, **body})
                if self.path == "/api/show":
                    if not self._known(body.get("model")):
                        return self._json(404, {"error": f"model '{body.get('model')}' not found"})
                    for spec in outer.more:
                        if body.get("model") in (spec.name, spec.name + ":latest"):
                            return self._json(200, spec.show())
                    return self._json(200, {"details": {"quantization_level": "Q4_K_M", "family": "qwen2"},
                                            "model_info": {}, "modified_at": "2026-01-01T00:00:00Z"})
                if self.path != "/api/chat":
                    return self._json(404, {"error": "not found"})
                if not self._known(body.get("model")):
                    return self._json(404, {"error": f"model '{body.get('model')}' not found"})
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    return self._json(503, {"error": "server busy, please try again.  maximum pending requests exceeded"})
                top = body.get("top_logprobs", 0)
                if not 0 <= top <= 20:
                    return self._json(400, {"error": "top_logprobs must be between 0 and 20"})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                if outer.script is not None:
                    for content, thinking, logprobs in ollama_chunks(outer.script, outer.flavor, top,
                                                                     with_format="format" in body):
                        message = {"role": "assistant", "content": content}
                        if thinking:
                            message["thinking"] = thinking
                        chunk = {"model": outer.model, "created_at": "2026-01-01T00:00:00Z", "message": message,
                                 "done": False}
                        if body.get("logprobs"):
                            chunk["logprobs"] = logprobs
                        self.wfile.write(json.dumps(chunk).encode() + b"\n")
                    done = {"model": outer.model, "created_at": "2026-01-01T00:00:00Z",
                            "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
                    self.wfile.write(json.dumps(done).encode() + b"\n")
                    return
                for i, piece in enumerate(outer.reply):
                    if outer.mode == "error_mid_stream" and i == 1:
                        self.wfile.write(json.dumps({"error": "an error was encountered while running the model"}).encode() + b"\n")
                        return
                    if outer.mode == "cut" and i == 1:
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    chunk = {"model": outer.model, "created_at": "2026-01-01T00:00:00Z",
                             "message": {"role": "assistant", "content": piece}, "done": False}
                    if body.get("logprobs"):
                        alts = [_entry(piece, -0.1 * (i + 1)), _entry("?", -3.0)][: max(top, 0)]
                        chunk["logprobs"] = [{**_entry(piece, -0.1 * (i + 1)), "top_logprobs": alts}]
                    self.wfile.write(json.dumps(chunk).encode() + b"\n")
                    self.wfile.flush()
                    if outer.mode == "slow":
                        time.sleep(1.0)
                done = {"model": outer.model, "created_at": "2026-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                        "eval_count": len(outer.reply)}
                self.wfile.write(json.dumps(done).encode() + b"\n")

        self._serve(Handler, port)


class FakeOpenAI(_LoopbackServer):
    """An OpenAI-compatible chat server (llama.cpp's shape, with ids) with the same failure modes."""

    def __init__(self, model: str = "m", reply: list[str] | None = None, port: int = 0) -> None:
        self.model = model
        self.reply = reply or ["Hel", "lo", " world"]
        self.mode = "ok"
        self.fail_first = 0
        self.requests: list[dict] = []
        self.script: Script | None = None  # when set: stream these tokens as llama-server does
        outer = self

        class Handler(_JsonHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/v1/models":
                    return self._json(200, {"data": [{"id": outer.model}]})
                self._json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                outer.requests.append(body)
                if body.get("model") != outer.model:
                    return self._json(404, {"error": {"message": f"model '{body.get('model')}' not found"}})
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    return self._json(503, {"error": {"message": "Loading model"}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                if outer.script is not None:
                    top = body.get("top_logprobs", 0) if body.get("logprobs") else 0
                    for choice in openai_chunks(outer.script, top):
                        if not body.get("logprobs"):
                            choice = {"delta": choice["delta"]}
                        chunk = {"choices": [{"index": 0, **choice, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for i, piece in enumerate(outer.reply):
                    if outer.mode == "error_mid_stream" and i == 1:
                        self.wfile.write(b'data: {"error": {"message": "the model crashed"}}\n\n')
                        self.wfile.flush()
                        return
                    if outer.mode == "cut" and i == 1:
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    entry = {"id": 100 + i, "token": piece, "logprob": -0.1, "bytes": list(piece.encode()),
                             "top_logprobs": [{"id": 100 + i, "token": piece, "logprob": -0.1, "bytes": list(piece.encode())}]}
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "logprobs": {"content": [entry]},
                                          "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if outer.mode == "slow":
                        time.sleep(1.0)
                done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self._serve(Handler, port)


@contextmanager
def _server_process(argv: list[str], url: str, ready_path: str, name: str):
    """A server process, its URL yielded once `ready_path` answers 200; stopped afterwards. Waited for until it
    answers or exits, with no clock of its own: a loaded machine stretches a cold start past any fixed bound,
    and a server that hangs is pytest-timeout's to report."""
    log = tempfile.TemporaryFile()  # llama.cpp logs a lot at load: a pipe nobody reads would fill up and block it
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{name} exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def llama_cpp_server(model_path: str, alias: str = "smol", *, logits_all: bool = True):
    port = free_port()
    with _server_process(
        [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
         "--port", str(port), "--model_alias", alias, "--logits_all", "true" if logits_all else "false", "--n_ctx", "2048"],
        f"http://127.0.0.1:{port}", "/v1/models", "llama_cpp.server",
    ) as url:
        yield url


LLAMA_SERVER_BIN = "build/llama-server/bin/llama-server"  # where `make test-llama-server` builds it


@contextmanager
def llama_server(binary: str, model_path: str, alias: str = "smol", *, extra: tuple[str, ...] = ()):
    """The real C++ `llama-server` (built from the llama.cpp that llama-cpp-python's sdist vendors) on
    loopback, serving `model_path` as `alias`."""
    port = free_port()
    with _server_process(
        [binary, "--model", model_path, "--host", "127.0.0.1", "--port", str(port), "--alias", alias,
         "--ctx-size", "2048", "--parallel", "1", "--threads", "2", "--no-webui", "--no-warmup", *extra],
        f"http://127.0.0.1:{port}", "/health", "llama-server",
    ) as url:
        yield url
