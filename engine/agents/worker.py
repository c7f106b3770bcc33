"""Worker: rewrites the whole script following an instruction, with its reasoning first."""

from __future__ import annotations

from engine.agents.parsing import WorkerAnswer, parse_worker_output
from engine.teachers.base import Generation, Message

SYSTEM = (
    "You are a careful Python programmer. You get an instruction and a Python script. Rewrite the "
    "script so that it follows the instruction. Answer in this format:\n"
    "REASONING: one or two sentences on what you change and why.\n"
    "```python\n<the complete new script>\n```\n"
    "Always write the whole script in one code block, never a fragment, and nothing after the block."
)


def worker_messages(instruction: str, script: str) -> list[Message]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Instruction: {instruction}\n\nScript:\n```python\n{script}```"},
    ]


def parse_answer(generation: Generation) -> WorkerAnswer:
    """Raises `OutputFormatError` with the reason when the answer has no single whole script."""
    return parse_worker_output(generation.text)


def answer_text(reasoning: str, script: str) -> str:
    """An answer in the worker's format (what the student learns to write), e.g. for a user's own edit."""
    body = script if script.endswith("\n") else script + "\n"
    return f"REASONING: {reasoning}\n```python\n{body}```\n"
