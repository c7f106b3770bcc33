"""What each agent's answer looks like: one `Shape` per agent, in a text form and a JSON form.

The text form is what the prompts ask for and what the strict parsers in `parsing.py` read; its GBNF
grammar lets llama.cpp (embedded, or a llama.cpp server) mask every token that would leave it. The
JSON form is for servers that enforce JSON schemas only (Ollama's `format`, OpenAI's
`response_format`): the same fields as a JSON object, which the same parsers also read.

Every agent but the worker reasons first and answers second (chain-of-thought, as the paper's
agents do), on one line each, so that a parser can take the answer without guessing:

    worker    REASONING: ...            then one ```python block with the whole script, nothing after
    planner   1. step / 2. step ...     numbered steps, one per line
    lead      REASONING: ...            INSTRUCTION: prose, no code fences
    analyzer  REASONING: ...            LABEL: ACCEPTED | REDO | EDIT
    judge     REASONING: ...            VERDICT: A | B

Why the grammars forbid backticks in prose: a fence in the lead's instruction made the worker copy
it (an instruction that was "```python ```"), and a fence in the worker's reasoning opens a second
code block. Line lengths are bounded so that a looping model runs into the end of a line, not into
`max_tokens` with half an answer. A shape's `version` goes up whenever its grammar or its wording
changes: rows record "worker@1", and a dataset can be filtered by it.

The JSON schemas bound no string lengths: llama.cpp expands `maxLength` into one grammar rule per
character and refuses schemas past a few hundred (`test_every_grammar_and_json_schema_compiles_in_llama_cpp`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from engine.teachers.base import Constraint

LABEL_WORDS = {"accepted": "ACCEPTED", "redo": "REDO", "further_edit": "EDIT"}
VERDICTS = ("A", "B")

# A line of prose: no backtick, no newline, 1..n characters. llama.cpp expands {m,n} into rules.
_PROSE = '[^`\\n] [^`\\n]{{0,{n}}}'


def _prose(n: int) -> str:
    return _PROSE.format(n=n - 1)


@dataclass(frozen=True)
class Shape:
    agent: str
    version: int
    text_format: str  # how the prompt describes the text form
    json_format: str  # how the prompt describes the JSON form
    gbnf: str
    json_schema: dict
    render_text: Callable[[dict[str, Any]], str]  # fields -> the text form (few-shot demos)

    @property
    def name(self) -> str:
        return f"{self.agent}@{self.version}"

    def format_text(self, form: str) -> str:
        return self.json_format if form == "json" else self.text_format

    def constraint(self) -> Constraint:
        return Constraint(self.name, self.gbnf, self.json_schema)

    def render(self, fields: dict[str, Any], form: str) -> str:
        """An answer with these fields, as a model should write it in this form."""
        if form == "json":
            return json.dumps({key: fields[key] for key in self.json_schema["properties"]}, ensure_ascii=False)
        return self.render_text(fields)


def _object(properties: dict[str, dict]) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


WORKER = Shape(
    agent="worker",
    version=1,
    text_format=(
        "Answer in this format:\n"
        "REASONING: one or two sentences on what you change and why.\n"
        "```python\n<the complete new script>\n```\n"
        "Always write the whole script in one code block, never a fragment, and nothing after the block."
    ),
    json_format=(
        'Answer with a JSON object: {"reasoning": "one or two sentences on what you change and why", '
        '"script": "the complete new script"}. Always the whole script, never a fragment.'
    ),
    gbnf=(
        f'root ::= "REASONING: " line ("\\n" line){{0,2}} "\\n```python\\n" first code* "```"\n'
        f"line ::= {_prose(400)}\n"
        # The first line of a script cannot be indented. No line of Python starts with a backtick
        # (after its indentation), and such a line is what would close the block early.
        'first ::= [^`\\n \\t] [^\\n]* "\\n"\n'
        'code ::= [ \\t]* ([^`\\n \\t] [^\\n]*)? "\\n"\n'
    ),
    json_schema=_object({"reasoning": {"type": "string"}, "script": {"type": "string", "minLength": 1}}),
    render_text=lambda f: f"REASONING: {f['reasoning']}\n```python\n{f['script'].rstrip(chr(10))}\n```",
)

PLANNER_MAX_STEPS = 8  # the grammar's bound; [session] max_steps cuts further


def _planner(max_steps: int = PLANNER_MAX_STEPS) -> Shape:
    return Shape(
        agent="planner",
        version=1,
        text_format="Answer with a numbered list, one step per line (1. ..., 2. ...), and nothing else.",
        json_format='Answer with a JSON object: {"steps": ["first step", "second step", ...]}.',
        gbnf=(
            f'root ::= step ("\\n" step){{0,{max_steps - 1}}}\n'
            f'step ::= [1-9] [0-9]? ". " {_prose(240)}\n'
        ),
        json_schema=_object({"steps": {"type": "array", "items": {"type": "string", "minLength": 1},
                                       "minItems": 1, "maxItems": max_steps}}),
        render_text=lambda f: "\n".join(f"{i + 1}. {s}" for i, s in enumerate(f["steps"])),
    )


PLANNER = _planner()

def _reasoned(agent: str, marker: str, key: str, *, reasoning: str, answer: str, reasoning_chars: int,
              answer_gbnf: str, answer_schema: dict) -> Shape:
    """A reasoning-first shape: `REASONING: <one line>` then `<MARKER>: <answer>` (JSON: reasoning, key)."""
    return Shape(
        agent=agent,
        version=1,
        text_format=f"Answer in this format:\nREASONING: {reasoning}.\n{marker}: {answer}",
        json_format=f'Answer with a JSON object: {{"reasoning": "{reasoning}", "{key}": {answer}}}.',
        gbnf=f'root ::= "REASONING: " {_prose(reasoning_chars)} "\\n{marker}: " {answer_gbnf}\n',
        json_schema=_object({"reasoning": {"type": "string"}, key: answer_schema}),
        render_text=lambda f: f"REASONING: {f['reasoning']}\n{marker}: {f[key]}",
    )


# One line each for the lead: a second line of "instruction" was where small models pasted the script.
LEAD = _reasoned("lead", "INSTRUCTION", "instruction", reasoning="one sentence on what the script needs",
                 answer="the instruction for the programmer on one line, at most five sentences, in plain words, "
                        "without code", reasoning_chars=300, answer_gbnf=_prose(800),
                 answer_schema={"type": "string", "minLength": 1})
ANALYZER = _reasoned("analyzer", "LABEL", "label", reasoning="one short sentence on what the user means",
                     answer="ACCEPTED, REDO or EDIT", reasoning_chars=200,
                     answer_gbnf="(" + " | ".join(f'"{w}"' for w in LABEL_WORDS.values()) + ")",
                     answer_schema={"type": "string", "enum": list(LABEL_WORDS.values())})
JUDGE = _reasoned("judge", "VERDICT", "verdict", reasoning="one sentence comparing the two", answer="A or B",
                  reasoning_chars=300, answer_gbnf='("A" | "B")', answer_schema={"type": "string", "enum": list(VERDICTS)})

SHAPES: dict[str, Shape] = {s.agent: s for s in (PLANNER, LEAD, WORKER, ANALYZER, JUDGE)}


def planner_shape(max_steps: int) -> Shape:
    """The planner's shape bounded to the session's step limit (the same version: the bound is a setting)."""
    return _planner(max(1, min(max_steps, PLANNER_MAX_STEPS)))
