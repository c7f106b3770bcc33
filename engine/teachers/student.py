"""A trained student as a teacher backend, in process: on llama.cpp where it converts, else `transformers`.

`model` names a training run directory (base student + its LoRA adapter), an exported adapter
directory, a merged Hugging Face model directory or a GGUF file; `engine.student.loader` resolves it.

Why llama.cpp first: side-chain and student-first sessions, `shake eval --generate` and the scoreboard
spend their time in the student's decoding, and transformers decoded SmolLM2-135M at 0.41x the
embedded llama.cpp teacher's tokens/s (one token at a time is per-op overhead, which llama.cpp does
not pay; README, `bench_student_generation.py`). A student whose base is a GGUF file (the bundled
default, or `--student FILE.gguf`) trained on exactly that file's weights, so llama.cpp serves it as
that file plus its adapter written as a GGUF LoRA (engine/student/gguf_lora.py, cached once per
adapter by engine/student/converted.py): the same function in the base's own quantization, decoded
by the embedded backend's own loop (`EmbeddedTeacher`: ids, bytes, log-probabilities and top-k per
token, stop strings, cancel). Greedy answers match the transformers path's on a fixed prompt set
(tests/test_student_llama_cpp.py states the agreement).

Where it does not convert, the student generates with transformers and `serving` says why: a Hugging
Face base (no GGUF for llama.cpp to load: export it with `--gguf` and serve the file), a merged
directory, an adapter llama.cpp cannot apply (DoRA, trained biases, adapted embeddings), or llama.cpp
refusing the file. `serve = "transformers"` asks for that path, `serve = "llama.cpp"` makes a failed
conversion an error. On transformers the adapter is merged in fp32 and the weights then cast to the
precision the hardware computes fastest (bf16 on CPUs with AMX or AVX-512-BF16 and on GPUs with
bf16, fp32 elsewhere); generation decodes token by token with a KV cache and records the same per
token fields, taken from fp32 logits; `score` is one teacher-forced forward pass.

On either engine the student's identity is a student's (`backend = "student"`, the run's version, the
adapter's digest): a student never scores as a teacher (engine/session/soft_labels.py), whichever
engine computed its numbers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, StudentError, TeacherError
from engine.logprobs import TokenLogprob, TokenLogprobs
from engine.teachers.base import Generation, Message, ModelIdentity, SamplingParams, TokenCallback, file_fingerprint
from engine.teachers.sampling import log_softmax, sample, top_k


LLAMA_CPP, TRANSFORMERS = "llama.cpp", "transformers"


@dataclass(frozen=True)
class Serving:
    """Which engine serves the student, and why (empty when it is llama.cpp, the one wanted)."""

    engine: str  # LLAMA_CPP | TRANSFORMERS
    why: str = ""

    def line(self) -> str:
        return self.engine + (f" ({self.why})" if self.why else "")


def llama_cpp_files(source) -> tuple[Path, Path | None]:
    """(GGUF, GGUF LoRA or None) that serve `source` on llama.cpp; StudentError with the reason when none do."""
    if source.gguf_path is None:
        what = "a merged Hugging Face directory" if source.adapter is None else "a Hugging Face directory"
        raise StudentError(f"the student's weights are {what}, not a GGUF file llama.cpp loads "
                           "(`shake student export --gguf` writes one)")
    if source.adapter is None:
        return source.gguf_path, None
    from engine.student.converted import lora_gguf

    return source.gguf_path, lora_gguf(source.adapter, source.gguf_path)


class StudentTeacher:
    can_score = True

    def __init__(self, config: TeacherConfig) -> None:
        if not config.model:
            raise TeacherError(f"teacher '{config.name}' (student backend) needs model = \"RUN_DIR or MODEL_DIR\"")
        self.config = config
        self.path = Path(config.model).expanduser()
        if not self.path.exists():
            raise TeacherError(f"teacher '{config.name}': no student at {self.path}")
        self._loaded = None  # transformers: (model, tokenizer, vocab)
        self._cpp = None  # llama.cpp: an EmbeddedTeacher on the base GGUF with the adapter
        self.serving: Serving | None = None  # known once loaded
        self.lock = threading.RLock()
        self.identity = ModelIdentity(config.name, "student", self.path.name)

    def _source(self):
        from engine.student.loader import resolve_student

        try:
            source = resolve_student(self.path)
        except StudentError as err:
            raise TeacherError(f"teacher '{self.config.name}': {err}") from None
        digest_file = source.weights_file
        self.identity = ModelIdentity(
            self.config.name, "student", source.version,
            file_fingerprint(digest_file) if digest_file and digest_file.exists() else "",
            source.kind,
        )
        return source

    def _engine(self):
        """The llama.cpp teacher serving this student, or None for transformers (`serving` says why)."""
        if self.serving is not None:
            return self._cpp
        source = self._source()
        if self.config.serve == TRANSFORMERS:
            self.serving = Serving(TRANSFORMERS, "serve = \"transformers\"")
            return None
        try:
            from engine.teachers.embedded import EmbeddedTeacher

            gguf, lora = llama_cpp_files(source)
            cpp = EmbeddedTeacher(TeacherConfig(name=self.config.name, model=str(gguf), n_ctx=self.config.n_ctx,
                                                n_threads=self.config.n_threads, constrain="off"), lora=lora)
            cpp.health()
        except (StudentError, TeacherError, ImportError) as err:
            if self.config.serve == LLAMA_CPP:
                raise TeacherError(f"teacher '{self.config.name}': serve = \"llama.cpp\", but {err}") from None
            self.serving = Serving(TRANSFORMERS, f"not on llama.cpp: {err}")
            return None
        self._cpp, self.serving = cpp, Serving(LLAMA_CPP)
        return cpp

    def _load(self):
        """The transformers student: (model, tokenizer, vocab)."""
        if self._loaded is None:
            import torch

            from engine.student.loader import load_student
            from engine.student.precision import resolve_precision
            from engine.tokens import StudentVocab

            source = self._source()
            try:
                student = load_student(source, device=torch.device("cpu"), merge=True,
                                       precision=resolve_precision(self.config.precision, "cpu"))
            except StudentError as err:
                raise TeacherError(f"teacher '{self.config.name}': {err}") from None
            self._loaded = (student.model, student.tokenizer, StudentVocab(student.tokenizer))
        return self._loaded

    def health(self) -> None:
        try:
            if self._engine() is None:
                self._load()
        except TeacherError:
            raise
        except Exception as err:
            raise TeacherError(f"teacher '{self.config.name}': the student at {self.path} does not load: {err}") from None

    def _prompt_ids(self, tokenizer, messages: list[Message]) -> list[int]:
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(out["input_ids"])

    def generate(
        self,
        messages: list[Message],
        sampling: SamplingParams,
        *,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        cpp = self._engine()
        if cpp is not None:
            gen = cpp.generate(messages, sampling, on_token=on_token, cancel=cancel)
            gen.identity = self.identity  # the student's, not the base GGUF's
            return gen
        import torch

        model, tokenizer, vocab = self._load()
        started = time.perf_counter()
        rng = np.random.default_rng(sampling.seed)
        eos = {tokenizer.eos_token_id}
        with self.lock, torch.inference_mode():
            ids = torch.tensor([self._prompt_ids(tokenizer, messages)])
            if ids.shape[1] >= self.config.n_ctx:
                raise TeacherError(f"teacher '{self.config.name}': the prompt has {ids.shape[1]} tokens, "
                                   f"more than n_ctx={self.config.n_ctx}")
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            logits = out.logits[0, -1].float().numpy()
            tokens: list[TokenLogprob] = []
            finish = "length"
            for _ in range(min(sampling.max_tokens, self.config.n_ctx - ids.shape[1])):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("generation cancelled")
                token = sample(logits, sampling, rng)
                if token in eos:
                    finish = "stop"
                    break
                lp = log_softmax(logits)
                piece = vocab.pieces[token]
                tokens.append(TokenLogprob(token, piece, float(lp[token]),
                                           top_k(lp, sampling.top_logprobs, lambda i: vocab.pieces[i])))
                if on_token:
                    on_token(piece.decode("utf-8", errors="ignore"))
                out = model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1].float().numpy()
        text = b"".join(t.token_bytes for t in tokens).decode("utf-8", errors="replace")
        return Generation(text, tokens, self.identity, sampling, finish, time.perf_counter() - started)

    def score(self, messages: list[Message], response: str, *, top_logprobs: int) -> TokenLogprobs:
        cpp = self._engine()
        if cpp is not None:
            return cpp.score(messages, response, top_logprobs=top_logprobs)
        import torch

        model, tokenizer, vocab = self._load()
        with self.lock, torch.inference_mode():
            prompt = self._prompt_ids(tokenizer, messages)
            response_ids = tokenizer.encode(response, add_special_tokens=False)
            if not response_ids:
                raise TeacherError("cannot score an empty response")
            logits = model(input_ids=torch.tensor([prompt + response_ids])).logits[0].float().numpy()
        tokens = []
        for i, tok in enumerate(response_ids):
            lp = log_softmax(logits[len(prompt) - 1 + i])
            tokens.append(TokenLogprob(tok, vocab.pieces[tok], float(lp[tok]),
                                       top_k(lp, top_logprobs, lambda j: vocab.pieces[j])))
        return TokenLogprobs.from_tokens(tokens)

    def close(self) -> None:
        self._loaded = None
        self._cpp = None
        self.serving = None
