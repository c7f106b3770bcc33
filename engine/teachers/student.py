"""A trained student as a teacher backend, in process with `transformers`.

`model` names a training run directory (base student + its LoRA adapter), an exported adapter
directory, or a merged Hugging Face model directory; `engine.student.loader` resolves and loads it,
with the adapter merged in fp32 and the weights then cast to the precision the hardware computes
fastest (bf16 on CPUs with AMX or AVX-512-BF16 and on GPUs with bf16, fp32 elsewhere).
Generation decodes token by token with a KV cache (the prompt's logits are computed for its last
position only) and records, like the embedded backend, each token's id, bytes, log-probability and
top-k, taken from fp32 logits; `score` is one teacher-forced forward pass. A student exported to
GGUF is served by the embedded backend instead (`backend = "embedded"`, `model = "student.gguf"`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, StudentError, TeacherError
from engine.logprobs import TokenLogprob, TokenLogprobs
from engine.teachers.base import Generation, Message, ModelIdentity, SamplingParams, TokenCallback, file_fingerprint
from engine.teachers.sampling import log_softmax, sample, top_k


class StudentTeacher:
    can_score = True

    def __init__(self, config: TeacherConfig) -> None:
        if not config.model:
            raise TeacherError(f"teacher '{config.name}' (student backend) needs model = \"RUN_DIR or MODEL_DIR\"")
        self.config = config
        self.path = Path(config.model).expanduser()
        if not self.path.exists():
            raise TeacherError(f"teacher '{config.name}': no student at {self.path}")
        self._loaded = None
        self.lock = threading.RLock()
        self.identity = ModelIdentity(config.name, "student", self.path.name)

    def _load(self):
        if self._loaded is None:
            import torch

            from engine.student.loader import load_student, resolve_student
            from engine.student.precision import resolve_precision
            from engine.tokens import StudentVocab

            try:
                source = resolve_student(self.path)
                student = load_student(source, device=torch.device("cpu"), merge=True,
                                       precision=resolve_precision(self.config.precision, "cpu"))
            except StudentError as err:
                raise TeacherError(f"teacher '{self.config.name}': {err}") from None
            self._loaded = (student.model, student.tokenizer, StudentVocab(student.tokenizer))
            digest_file = source.weights_file
            self.identity = ModelIdentity(
                self.config.name, "student", source.version,
                file_fingerprint(digest_file) if digest_file and digest_file.exists() else "",
                source.kind,
            )
        return self._loaded

    def health(self) -> None:
        try:
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
