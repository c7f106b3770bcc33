"""Planner: splits the change request into a short list of project steps."""

from __future__ import annotations

from dataclasses import dataclass

from engine.agents.parsing import parse_steps
from engine.prompts.book import DEFAULT_BOOK
from engine.teachers.base import Generation, Message

SYSTEM = DEFAULT_BOOK["planner"].system("off")


def plan_messages(request: str, script: str, max_steps: int) -> list[Message]:
    return DEFAULT_BOOK.planner(request, script, max_steps).messages()


@dataclass
class Plan:
    steps: list[str]
    used_fallback: bool  # the planner gave no usable list; the request became the only step


def parse_plan(generation: Generation, request: str, max_steps: int) -> Plan:
    steps = parse_steps(generation.text, max_steps)
    if steps:
        return Plan(steps, False)
    return Plan([request.strip()], True)
