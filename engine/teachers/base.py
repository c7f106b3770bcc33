"""The one interface every teacher backend implements.

A teacher turns chat messages into a `Generation`: the text and, per generated token, its bytes,
log-probability, top-k alternatives and id (where the backend has ids). `score(messages, response)`
returns the teacher-forced log-probabilities of a given response, or raises `ScoringUnsupported`.
Streaming goes through `on_token`; `cancel` (a `threading.Event`) stops a generation between tokens.

Constrained answers: a teacher whose `answer_form` is not "off" takes `constraint=` in `generate`
(a `Constraint`: the GBNF grammar and the JSON schema of one agent's answer, by name and version).
The form is "grammar" (the text form, masked by a llama.cpp grammar), "json" (a JSON object, by the
server's structured-output support) or "off" (the shape is asked for in the prompt only; teachers
that declare nothing, such as the student, are "off"). A generation records the
constraint that was enforced (`Generation.constraint`, e.g. "worker@1") and the prompt version it
answered (`Generation.prompt_version`), for the row's provenance.

The recorded log-probabilities are always the model's own distribution *before* any grammar mask
(shared/README §8): the KD term distills what the model believes, and a teacher-forced re-score of
the same text, which has no mask, gives the same numbers.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from engine.logprobs import TokenLogprob, TokenLogprobs

Message = dict[str, str]
TokenCallback = Callable[[str], None]


@dataclass(frozen=True)
class ModelIdentity:
    """What produced an output, precisely enough to reproduce or compare it."""

    name: str  # the teacher's name in the configuration
    backend: str  # embedded | ollama | openai | scripted | student
    model: str  # model file, tag or served name
    digest: str = ""  # file hash or server digest, where known
    quantization: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.2
    max_tokens: int = 256
    top_p: float = 1.0
    top_k: int = 40
    seed: int = 0
    top_logprobs: int = 0  # none recorded unless asked: each teacher's number is [teachers.X] top_logprobs

    def as_dict(self) -> dict:
        return asdict(self)


ANSWER_FORMS = ("grammar", "json", "off")


@dataclass(frozen=True)
class Constraint:
    """The shape one agent's answer must take, in the two forms backends can enforce."""

    name: str  # "<agent>@<version>", recorded with every answer generated under it
    gbnf: str  # llama.cpp grammar of the text form (embedded, llama.cpp servers)
    json_schema: dict  # the JSON form (Ollama `format`, OpenAI-compatible `response_format`)


@dataclass
class Generation:
    text: str
    tokens: list[TokenLogprob] = field(default_factory=list)
    identity: ModelIdentity | None = None
    sampling: SamplingParams | None = None
    finish_reason: str = "stop"  # stop | length
    seconds: float = 0.0
    constraint: str | None = None  # the Constraint.name the backend enforced; None: unconstrained
    prompt_version: str | None = None  # the AgentPrompt.version the messages were built from
    # A thinking model's reasoning (Ollama `message.thinking`, llama-server `reasoning_content`). `tokens`
    # are the answer's alone: their bytes are exactly `text`; `thinking_tokens` are the reasoning's, whose
    # bytes are exactly `thinking` (the split of engine/teachers/entries.py `Transcript`).
    thinking: str = ""
    thinking_tokens: list[TokenLogprob] = field(default_factory=list)

    @property
    def has_logprobs(self) -> bool:
        return bool(self.tokens)

    def logprobs(self) -> TokenLogprobs | None:
        return TokenLogprobs.from_tokens(self.tokens) if self.tokens else None

    def thinking_logprobs(self) -> TokenLogprobs | None:
        return TokenLogprobs.from_tokens(self.thinking_tokens) if self.thinking_tokens else None


def file_fingerprint(path: Path) -> str:
    """A cheap, stable digest of a model file: size plus the hash of its first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return "sha256-head-tail:" + h.hexdigest()[:24]


def answer_form(teacher: object) -> str:
    """The form a teacher answers in: "grammar", "json" or "off" (a teacher that declares none)."""
    form = getattr(teacher, "answer_form", "off")
    return form if form in ANSWER_FORMS else "off"


@runtime_checkable
class Teacher(Protocol):
    identity: ModelIdentity
    can_score: bool

    def generate(
        self,
        messages: list[Message],
        sampling: SamplingParams,
        *,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation: ...

    def score(self, messages: list[Message], response: str, *, top_logprobs: int) -> TokenLogprobs: ...

    def health(self) -> None:
        """Raise a `TeacherError` saying what is wrong, or return when the teacher can answer."""
        ...

    def close(self) -> None: ...
