"""A trained student as a teacher backend, in process with `transformers`.

`model` names a training run directory (base student + its LoRA adapter), an exported adapter
directory, or a merged Hugging Face model directory. Generation decodes token by token with a KV
cache and records, like the embedded backend, each token's id, bytes, log-probability and top-k;
`score` is one teacher-forced forward pass. A student exported to GGUF is served by the embedded
backend instead (`backend = "embedded"`, `model = "student.gguf"`).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from engine.config import TeacherConfig
from engine.errors import GenerationCancelled, TeacherError
from engine.logprobs import TokenLogprob, TokenLogprobs
from engine.teachers.base import Generation, Message, ModelIdentity, SamplingParams, TokenCallback, file_fingerprint
from engine.teachers.sampling import log_softmax, sample, top_k


def resolve_student(path: Path) -> tuple[str, dict, Path | None, str]:
    """(base source, from_pretrained kwargs, adapter dir or None, version) for a student path."""
    from engine.teachers.embedded import default_gguf_path

    if (path / "config.json").exists() and (path / "snapshot").exists():  # a training run
        base = json.loads((path / "config.json").read_text()).get("student", "")
        adapter = path / "adapter" if (path / "adapter" / "adapter_config.json").exists() else None
        if adapter is None:
            ckpts = sorted(p for p in (path / "checkpoints").glob("step-*") if (p / "COMPLETE").exists())
            if not ckpts:
                raise TeacherError(f"the training run {path} has no adapter yet")
            adapter = ckpts[-1] / "adapter"
        version = f"{path.name}@{adapter.parent.name if adapter.parent != path else 'final'}"
    elif (path / "adapter_config.json").exists():  # an exported adapter
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
        adapter, version = path, path.name
    elif (path / "config.json").exists():  # a merged model
        return str(path), {}, None, path.name
    else:
        raise TeacherError(f"no student at {path}: give a training run, an adapter or a merged model directory")
    if not base:
        gguf = default_gguf_path()
        return str(gguf.parent), {"gguf_file": gguf.name}, adapter, version
    base_path = Path(base)
    if base_path.suffix == ".gguf":
        return str(base_path.parent), {"gguf_file": base_path.name}, adapter, version
    return base, {}, adapter, version


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
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from engine.tokens import StudentVocab

            source, extra, adapter, version = resolve_student(self.path)
            tokenizer = AutoTokenizer.from_pretrained(source, **extra)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **extra)
            digest_file = None
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter))
                digest_file = adapter / "adapter_model.safetensors"
            else:
                candidates = sorted(Path(source).glob("*.safetensors"))
                digest_file = candidates[0] if candidates else None
            model.eval()
            self._loaded = (model, tokenizer, StudentVocab(tokenizer))
            self.identity = ModelIdentity(
                self.config.name, "student", version,
                file_fingerprint(digest_file) if digest_file and digest_file.exists() else "",
                "lora" if adapter is not None else "merged",
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
        with self.lock, torch.no_grad():
            ids = torch.tensor([self._prompt_ids(tokenizer, messages)])
            if ids.shape[1] >= self.config.n_ctx:
                raise TeacherError(f"teacher '{self.config.name}': the prompt has {ids.shape[1]} tokens, "
                                   f"more than n_ctx={self.config.n_ctx}")
            out = model(input_ids=ids, use_cache=True)
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
        with self.lock, torch.no_grad():
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
