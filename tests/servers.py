"""Servers on loopback for backend tests.

`FakeOllama` answers in Ollama's documented v0.12.11 shape (`/api/chat` NDJSON stream with
`logprobs`/`top_logprobs`, `/api/show`, `/api/tags`); no Ollama server can be installed here.
`llama_cpp_server` starts the real `python -m llama_cpp.server` on the bundled model.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


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


class FakeOllama(_LoopbackServer):
    def __init__(self, model: str = "qwen2.5-coder:7b", reply: list[str] | None = None, port: int = 0) -> None:
        self.model = model
        self.reply = reply or ["Hel", "lo", " world"]
        self.requests: list[dict] = []
        self.mode = "ok"  # ok | error_mid_stream | cut | slow
        self.fail_first = 0  # answer 503 (loading) to this many chat requests first
        outer = self

        class Handler(_JsonHandler):
            def _known(self, name):
                return name in (outer.model, outer.model + ":latest")

            def do_GET(self):
                if self.path == "/api/tags":
                    self._json(200, {"models": [{"name": outer.model, "model": outer.model, "digest": "sha256:abc123",
                                                 "size": 1, "modified_at": "2026-01-01T00:00:00Z"}]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                outer.requests.append({"path": self.path, **body})
                if self.path == "/api/show":
                    if not self._known(body.get("model")):
                        return self._json(404, {"error": f"model '{body.get('model')}' not found"})
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
def llama_cpp_server(model_path: str, alias: str = "smol"):
    port = free_port()
    # llama.cpp logs a lot at load: a pipe nobody reads would fill up and block the server.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
         "--port", str(port), "--model_alias", alias, "--logits_all", "true", "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError("llama_cpp.server did not start in 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
