"""Planner: splits the change request into a short list of project steps."""

from __future__ import annotations

from dataclasses import dataclass

from engine.agents.parsing import parse_steps
from engine.teachers.base import Generation, Message

SYSTEM = (
    "You plan changes to a Python script. Split the change request into a few small steps that can "
    "each be done and checked on their own. Answer with a numbered list, one step per line, and nothing else."
)


def plan_messages(request: str, script: str, max_steps: int) -> list[Message]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"Change request: {request}\n\nScript:\n```python\n{script}```\n\n"
            f"List at most {max_steps} steps.",
        },
    ]


@dataclass
class Plan:
    steps: list[str]
    used_fallback: bool  # the planner gave no usable list; the request became the only step


def parse_plan(generation: Generation, request: str, max_steps: int) -> Plan:
    steps = parse_steps(generation.text, max_steps)
    if steps:
        return Plan(steps, False)
    return Plan([request.strip()], True)
