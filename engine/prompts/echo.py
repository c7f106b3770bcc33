"""Echoes: answers that repeat the prompt's own text instead of answering it.

A small model held to a shape can fill the shape by copying what it was shown: the format's worked
example, a sentence of its instructions ("Split the change request into the steps it names."), a
fixed phrase of the user-message template, or an angle-bracket placeholder of an older prompt
(`<the instruction for the programmer ...>`: the lead's instruction in most sessions before issue
#26). Such an answer is well-formed and says nothing. It is malformed here: retried, never passed on
as an instruction or a step, and never stored as a reasoning or a chosen.

What counts as the prompt's own text is fixed text only: every agent's built-in instructions, every
shape's format description and examples, the user-message templates' fixed phrases and a prompt's
demonstrations. The user's request, step and script are never sources: an instruction that says
what the request says is a fine instruction.

`shake data check` uses the same test on rows written before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.agents import shapes
from engine.prompts import builtin

# Words that only a format description puts between angle brackets: `x < y and z > w` is code, not this.
_PLACEHOLDER = re.compile(r"<[^<>\n]*\b(?:instruction|sentences?|script|reasoning|programmer|answer|step|"
                          r"change|request|label|verdict|complete|explanation)s?\b[^<>\n]*>", re.IGNORECASE)
_WORDS = re.compile(r"[a-z0-9_]+")
MIN_ECHO_WORDS = 3  # a shorter field ("Fix it.") repeats nothing worth naming
COVER_SHARE = 0.6  # a prompt sentence that is most of the field makes the field an echo
BIGRAM_SHARE = 0.8  # a field of MIN_BIGRAM_WORDS or more whose word pairs are mostly one source sentence's
MIN_BIGRAM_WORDS = 5

# Texts of earlier prompt versions, so that `shake data check` recognises what rows written with them echo.
LEGACY_TEXTS = (
    "You plan changes to a Python script. Split the change request into a few small steps that can each be "
    "done and checked on their own. A small request is one step.",
    "Split the request into a few small steps.",
    "You get an instruction and a Python script. Rewrite the script so that it follows the instruction, and "
    "keep everything the instruction does not ask you to change.",
    "Answer with a numbered list, one step per line, and nothing else.",
)

# Fixed phrases of the user messages (engine/prompts/builtin.py), as a model would copy them.
TEMPLATE_PHRASES = (
    "Write the instruction for this step.", "Write an instruction that fixes this error.",
    "Write the instruction for this step so that the programmer makes the change.",
    "Write a new instruction for this step that avoids that mistake, starting again from the current script.",
    "Write an instruction that refines the current script as the user asks.",
    "Fix the error and keep the change.", "The project lead says:", "Change it as follows:",
    "Do this step now:", "List at most", "Which script follows the request better, A or B?",
    "The programmer's last script failed when it ran:",
)


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:])\s+|\n+", text) if s.strip()]


@dataclass(frozen=True)
class EchoSources:
    """The fixed texts an answer must not repeat, as normalized word strings."""

    blob: str  # every source joined: a field that is a run of it is an echo
    sentences: tuple[str, ...]  # each source sentence of MIN_ECHO_WORDS words or more
    bigrams: tuple[frozenset[tuple[str, str]], ...]  # each source sentence's word pairs
    examples: frozenset[str]  # whole example and demonstration fields: copying one is an echo


def _normal(text: str) -> str:
    return " ".join(words(text))


@lru_cache(maxsize=1)
def builtin_sources() -> EchoSources:
    return sources_from(())


def sources_from(extra_examples: tuple[str, ...]) -> EchoSources:
    """The built-in texts plus a prompt's own demonstrations (their answers' fields)."""
    texts: list[str] = list(builtin.INSTRUCTIONS.values()) + list(TEMPLATE_PHRASES) + list(LEGACY_TEXTS)
    examples: list[str] = [shapes.WORKER_EXAMPLE_SCRIPT, shapes.WORKER_EXAMPLE_NOTE, *shapes.PLANNER_EXAMPLE[1],
                           shapes.PLANNER_EXAMPLE[0], *extra_examples]
    for shape in shapes.SHAPES.values():
        texts += [shape.text_format, shape.json_format]
    for line in shapes.LEAD.text_format.split("\n") + shapes.JUDGE.text_format.split("\n") + \
            shapes.ANALYZER.text_format.split("\n"):
        # the examples' free text: their reasoning and instruction (a label or a verdict is an answer)
        if line.split(":", 1)[0] in ("REASONING", "INSTRUCTION"):
            examples.append(line.split(":", 1)[1])
    sentences = tuple(sorted(s for s in {_normal(s) for text in texts + examples for s in _sentences(text)}
                             if len(s.split()) >= MIN_ECHO_WORDS))
    return EchoSources(
        blob=" " + " \n ".join(_normal(t) for t in texts + examples) + " ",
        sentences=sentences,
        bigrams=tuple(_bigrams(s) for s in sentences),
        examples=frozenset(n for n in (_normal(e) for e in examples) if n),
    )


def _bigrams(normal: str) -> frozenset[tuple[str, str]]:
    split = normal.split()
    return frozenset(zip(split, split[1:]))


def echo_reason(text: str, sources: EchoSources | None = None) -> str | None:
    """Why `text` (an instruction, a step, a reasoning, a script) is an echo of the prompt; None if it is not."""
    sources = sources or builtin_sources()
    if _PLACEHOLDER.search(text):
        return "it is the answer format's placeholder, not an answer"
    normal = _normal(text)
    n_words = len(normal.split())
    if not n_words:
        return None
    if normal in sources.examples:
        return "it copies the answer format's example"
    if n_words < MIN_ECHO_WORDS:
        return None
    if f" {normal} " in sources.blob:
        return "it repeats the prompt's own words"
    padded = f" {normal} "
    for sentence in sources.sentences:
        if f" {sentence} " in padded and len(sentence.split()) >= COVER_SHARE * n_words:
            return "it repeats the prompt's own words"
    if n_words >= MIN_BIGRAM_WORDS:
        pairs = _bigrams(normal)
        if any(len(pairs & source) >= BIGRAM_SHARE * len(pairs) for source in sources.bigrams):
            return "it repeats the prompt's own words"
    return None
