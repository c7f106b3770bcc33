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


# The worker writes the script first and says what it changed after it. Reasoning first lost most of
# a small model's answers (issue #26: 1 of 20 passing, against 7 of 20 for the bare request and a code
# block): the reasoning drifted, and the script followed the drift. A line written after the code
# describes the code the model already wrote, so it names what changed. No fixed marker word before
# that line: a grammar-forced word is spelt in pieces the tokenizer never uses (`R|EA|S|ON|ING`).
WORKER_EXAMPLE_SCRIPT = "def area(width, height):\n    return width * height\n\nprint(area(2, 3))\n"
WORKER_EXAMPLE_NOTE = "area() now takes width and height and the script prints area(2, 3)."
WORKER = Shape(
    agent="worker",
    version=2,
    text_format=(
        "Answer with the whole new script in one ```python block, never a fragment, then one line that says "
        "what you changed. For example:\n"
        f"```python\n{WORKER_EXAMPLE_SCRIPT}```\n{WORKER_EXAMPLE_NOTE}"
    ),
    json_format=(
        'Answer with a JSON object with the whole new script and one line on what you changed, for example: '
        + json.dumps({"script": WORKER_EXAMPLE_SCRIPT, "reasoning": WORKER_EXAMPLE_NOTE})
    ),
    gbnf=(
        'root ::= "```python\\n" first code* "```\\n" line\n'
        f"line ::= {_prose(300)}\n"
        # The first line of a script cannot be indented. No line of Python starts with a backtick
        # (after its indentation), and such a line is what would close the block early.
        'first ::= [^`\\n \\t] [^\\n]* "\\n"\n'
        'code ::= [ \\t]* ([^`\\n \\t] [^\\n]*)? "\\n"\n'
    ),
    json_schema=_object({"script": {"type": "string", "minLength": 1}, "reasoning": {"type": "string"}}),
    render_text=lambda f: f"```python\n{f['script'].rstrip(chr(10))}\n```\n{f['reasoning']}",
)

PLANNER_MAX_STEPS = 8  # the grammar's bound; [session] max_steps cuts further
PLANNER_EXAMPLE = ("read the limit from the command line, and print an error when it is negative",
                   ["Read the limit from the first command-line argument.",
                    "Print an error and exit when the limit is negative."])


def _planner(max_steps: int = PLANNER_MAX_STEPS) -> Shape:
    request, steps = PLANNER_EXAMPLE
    return Shape(
        agent="planner",
        version=2,
        text_format=("Answer with the steps as a numbered list, one step per line, and nothing else. For example, "
                     f"for \"{request}\":\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps))),
        json_format=(f'Answer with a JSON object with the list of steps. For example, for "{request}": '
                     + json.dumps({"steps": steps})),
        gbnf=(
            f'root ::= step ("\\n" step){{0,{max_steps - 1}}}\n'
            f'step ::= [1-9] [0-9]? ". " {_prose(240)}\n'
        ),
        json_schema=_object({"steps": {"type": "array", "items": {"type": "string", "minLength": 1},
                                       "minItems": 1, "maxItems": max_steps}}),
        render_text=lambda f: "\n".join(f"{i + 1}. {s}" for i, s in enumerate(f["steps"])),
    )


PLANNER = _planner()


def _reasoned(agent: str, marker: str, key: str, *, examples: tuple[tuple[str, str], ...], reasoning_chars: int,
              answer_gbnf: str, answer_schema: dict) -> Shape:
    """A reasoning-first shape: `REASONING: <one line>` then `<MARKER>: <answer>` (JSON: reasoning, key).

    The format is shown by worked examples, never described in angle brackets: a constrained small
    model copied `<the instruction for the programmer ...>` as its instruction, word for word, in most
    sessions (issue #26). An answer that copies an example is an echo (`engine/agents/echo.py`).
    """
    shown = "\n\n".join(f"REASONING: {r}\n{marker}: {a}" for r, a in examples)
    shown_json = " or ".join(json.dumps({"reasoning": r, key: a}) for r, a in examples)
    return Shape(
        agent=agent,
        version=2,
        text_format=f"Answer with one line of reasoning, then the answer, as in {'these examples' if len(examples) > 1 else 'this example'}:\n{shown}",
        json_format=f"Answer with a JSON object, for example: {shown_json}",
        gbnf=f'root ::= "REASONING: " {_prose(reasoning_chars)} "\\n{marker}: " {answer_gbnf}\n',
        json_schema=_object({"reasoning": {"type": "string"}, key: answer_schema}),
        render_text=lambda f: f"REASONING: {f['reasoning']}\n{marker}: {f[key]}",
    )


# One line each for the lead: a second line of "instruction" was where small models pasted the script.
LEAD = _reasoned("lead", "INSTRUCTION", "instruction",
                 examples=(("The loop in total() stops one item early, so the last price is never added.",
                            "In total(), loop over every item of prices, including the last one, and keep the "
                            "rest of the script as it is."),),
                 reasoning_chars=300, answer_gbnf=_prose(800), answer_schema={"type": "string", "minLength": 1})
ANALYZER = _reasoned("analyzer", "LABEL", "label",
                     examples=(("The user says the output is now right.", "ACCEPTED"),
                               ("The user says the change is wrong and wants it done again.", "REDO"),
                               ("The user keeps the change but asks for one more fix.", "EDIT")),
                     reasoning_chars=200,
                     answer_gbnf="(" + " | ".join(f'"{w}"' for w in LABEL_WORDS.values()) + ")",
                     answer_schema={"type": "string", "enum": list(LABEL_WORDS.values())})
JUDGE = _reasoned("judge", "VERDICT", "verdict",
                  examples=(("A keeps the checks and prints the total; B deletes the total.", "A"),),
                  reasoning_chars=300, answer_gbnf='("A" | "B")', answer_schema={"type": "string", "enum": list(VERDICTS)})

SHAPES: dict[str, Shape] = {s.agent: s for s in (PLANNER, LEAD, WORKER, ANALYZER, JUDGE)}


def planner_shape(max_steps: int) -> Shape:
    """The planner's shape bounded to the session's step limit (the same version: the bound is a setting)."""
    return _planner(max(1, min(max_steps, PLANNER_MAX_STEPS)))
