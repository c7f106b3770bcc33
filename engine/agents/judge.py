"""Judge: the teacher's verdict on a student's answer to the same instruction (side-chain mode)."""

from __future__ import annotations

import re

from engine.teachers.base import Generation, Message

SYSTEM = (
    "You compare two Python scripts written for the same instruction. Answer with one letter: "
    "A if script A follows the instruction better, B if script B does."
)
TEXT_SYSTEM = (
    "You compare two answers to the same request. Answer with one letter: A if answer A does the job "
    "better, B if answer B does."
)
_VERDICT = re.compile(r"\b([AB])\b")


def judge_messages(instruction: str, script_a: str, script_b: str) -> list[Message]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Instruction: {instruction}\n\nScript A:\n```python\n{script_a}```\n\n"
                                    f"Script B:\n```python\n{script_b}```\n\nWhich is better, A or B?"},
    ]


def judge_text_messages(request: str, answer_a: str, answer_b: str) -> list[Message]:
    """For the planner's and the lead's answers, which are text rather than scripts."""
    return [
        {"role": "system", "content": TEXT_SYSTEM},
        {"role": "user", "content": f"Request:\n{request}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\n"
                                    "Which is better, A or B?"},
    ]


def parse_verdict(generation: Generation) -> str | None:
    """'A' or 'B' when the judge named exactly one of them, else None (undecided)."""
    found = set(_VERDICT.findall(generation.text.upper()))
    return found.pop() if len(found) == 1 else None
