"""Project lead: turns the current step, the current script and any feedback or error into one instruction.

The lead reasons first (`REASONING:`), then gives the instruction (`INSTRUCTION:`), parsed strictly.
A teacher that is not held to that shape (the student, `constrain = "off"`) may answer with a plain
instruction: that is taken as it is when it holds no code fence and no half of the format;
anything else falls back to the step's own text, which the worker can always act on.
"""

from __future__ import annotations

import re

from engine.agents.parsing import parse_lead_output
from engine.errors import OutputFormatError
from engine.prompts.book import DEFAULT_BOOK
from engine.teachers.base import Generation, Message

SYSTEM = DEFAULT_BOOK["lead"].system("off")

MAX_INSTRUCTION_CHARS = 2000
_FORMAT_WORDS = re.compile(r"(?im)^\s*(?:\*\*)?(?:reasoning|instruction)(?:\*\*)?\s*:")


def instruction_messages(request: str, step: str, script: str, **context) -> list[Message]:
    return DEFAULT_BOOK.lead(request, step, script, **context).messages()


def _dedupe(text: str) -> str:
    """Small models loop: a paragraph said again is dropped, so the worker gets each point once."""
    seen: set[str] = set()
    paragraphs = []
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        key = " ".join(paragraph.split())
        if key and key not in seen:
            seen.add(key)
            paragraphs.append(paragraph.strip("\n"))
    return "\n\n".join(paragraphs).strip()


def parse_instruction(generation: Generation, step: str) -> tuple[str, bool]:
    """The instruction text and whether the step text had to stand in for it."""
    try:
        text = _dedupe(parse_lead_output(generation.text).instruction)
    except OutputFormatError:
        if generation.constraint is not None:  # held to the shape and still not in it (cut at max_tokens)
            return step, True
        plain = _dedupe(generation.text)
        if not plain or "```" in plain or "~~~" in plain or _FORMAT_WORDS.search(plain):
            return step, True
        text = plain
    if not text:
        return step, True
    return text[:MAX_INSTRUCTION_CHARS], False
