"""Judge: the teacher's verdict on a student's answer to the same instruction (side-chain mode).

The judge reasons first, then gives `VERDICT: A` or `VERDICT: B`, parsed strictly. An unconstrained
answer without that shape counts only when it names exactly one of A and B on its own.
"""

from __future__ import annotations

import re

from engine.agents.parsing import parse_judge_output
from engine.errors import OutputFormatError
from engine.prompts.book import DEFAULT_BOOK
from engine.teachers.base import Generation, Message

SYSTEM = DEFAULT_BOOK["judge"].system("off")
TEXT_SYSTEM = SYSTEM  # one judge prompt for scripts and for text answers
_VERDICT = re.compile(r"\b([AB])\b")


def judge_messages(instruction: str, script_a: str, script_b: str) -> list[Message]:
    return DEFAULT_BOOK.judge(instruction, script_a, script_b).messages()


def judge_text_messages(request: str, answer_a: str, answer_b: str) -> list[Message]:
    """For the planner's and the lead's answers, which are text rather than scripts."""
    return DEFAULT_BOOK.judge_text(request, answer_a, answer_b).messages()


def parse_verdict(generation: Generation) -> str | None:
    """'A' or 'B', or None (undecided)."""
    try:
        return parse_judge_output(generation.text).verdict
    except OutputFormatError:
        if generation.constraint is not None:
            return None
    found = set(_VERDICT.findall(generation.text.upper()))
    return found.pop() if len(found) == 1 else None
