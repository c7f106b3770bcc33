"""Worker: rewrites the whole script as the request, the step and the lead's instruction ask, then says what changed."""

from __future__ import annotations

from engine.agents.parsing import WorkerAnswer, parse_worker_output
from engine.agents.shapes import WORKER
from engine.prompts.book import DEFAULT_BOOK
from engine.teachers.base import Generation, Message

SYSTEM = DEFAULT_BOOK["worker"].system("off")  # the built-in system message of the text form


def worker_messages(request: str, script: str, *, step: str | None = None, instruction: str | None = None) -> list[Message]:
    """The built-in prompt's messages in the text form (a session uses its own `PromptBook`)."""
    return DEFAULT_BOOK.worker(request, step or request, instruction, script).messages()


def parse_answer(generation: Generation) -> WorkerAnswer:
    """Raises `OutputFormatError` with the reason when the answer has no single whole script."""
    return parse_worker_output(generation.text)


def answer_text(reasoning: str, script: str) -> str:
    """An answer in the worker's format (what the student learns to write), e.g. for a user's own edit."""
    return WORKER.render_text({"reasoning": reasoning, "script": script})
