"""Planner: splits the change request into a short list of project steps.

A request that names one change is one step, and the planner is not asked: a small planner split
"print the greeting twice" into five steps, three of them restating the second, and returned its own
instruction as a step (issue #26). A request with parts in so many words (a list, "First, ...",
"and then") is planned, and the plan is cleaned: steps that echo the prompt, steps that
only check or test, and steps that restate earlier ones (no content word the earlier steps lack)
are dropped. What is left is never empty: the request itself is the last resort.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from engine.agents.parsing import parse_steps
from engine.prompts.book import DEFAULT_BOOK
from engine.teachers.base import Generation, Message

SYSTEM = DEFAULT_BOOK["planner"].system("off")

_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.MULTILINE)
# Words that join parts of a request: at the start of a sentence ("First, ...", "Then ...", "Also ..."),
# "and then", "and also", "after that" between clauses, and ", then" before a verb ("say goodbye, then
# count"). A semicolon, or ", then" before a noun ("the name left-aligned, then the quantity
# right-aligned"), joins the clauses of one change as often as two changes.
_NOT_A_VERB = r"(?:the|a|an|its|his|her|their|our|my|your|this|that|these|those|one|two|three|\d)"
_PARTS = re.compile(r"(?:^|[.!?:]\s+)(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|then|next|also|finally|"
                    r"additionally|afterwards)\b|\band\s+(?:then|also)\b|\bafter that\b|"
                    rf",\s*then\s+(?!{_NOT_A_VERB}\b)[a-z]", re.IGNORECASE | re.MULTILINE)
_CHECK_ONLY = re.compile(r"^(?:test|verify|run|review|double[- ]check|check (?:that|the (?:script|code|output|result))|"
                         r"make sure (?:that )?(?:the )?(?:script|code|it) (?:works|runs))\b", re.IGNORECASE)
_CONTENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}|\d+")
_FILLER = frozenset("""the and for with that this then also into from are was were will should must can its add
make change changes update use using code script function step steps sure each all".split()
""".split())


def plan_messages(request: str, script: str, max_steps: int) -> list[Message]:
    return DEFAULT_BOOK.planner(request, script, max_steps).messages()


def names_one_change(request: str) -> bool:
    """Whether the request names one change: no list of parts, no word that joins parts."""
    return len(_LIST_LINE.findall(request)) < 2 and not _PARTS.search(request)


@dataclass
class Plan:
    steps: list[str]
    used_fallback: bool  # the planner gave no usable list; the request became the only step
    dropped: list[tuple[str, str]]  # (step, why) for each step of the planner's answer that was left out


def _content(text: str) -> set[str]:
    return {w.lower() for w in _CONTENT.findall(text)} - _FILLER


def clean_steps(steps: list[str], is_echo: Callable[[str], str | None]) -> tuple[list[str], list[tuple[str, str]]]:
    kept: list[str] = []
    dropped: list[tuple[str, str]] = []
    covered: set[str] = set()
    for step in steps:
        echo = is_echo(step)
        if echo:
            dropped.append((step, echo))
            continue
        if _CHECK_ONLY.match(step):
            dropped.append((step, "it only checks; every proposal is run anyway"))
            continue
        words = _content(step)
        if kept and words <= covered:
            dropped.append((step, "it restates an earlier step"))
            continue
        kept.append(step)
        covered |= words
    return kept, dropped


def parse_plan(generation: Generation, request: str, max_steps: int,
               is_echo: Callable[[str], str | None] = lambda step: None) -> Plan:
    steps, dropped = clean_steps(parse_steps(generation.text, max_steps), is_echo)
    if steps:
        return Plan(steps, False, dropped)
    return Plan([request.strip()], True, dropped)
