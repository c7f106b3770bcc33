"""Strict parsers for model output. Each returns a clean result or raises `OutputFormatError`.

Model text is untrusted: it may hold several code blocks, unclosed fences, CRLF line ends, ANSI
escapes or markup. Nothing here interprets it; the parsers only cut it, and they never return half a
script.

Each agent's answer comes in the text form its prompt asks for or, from a teacher held to a JSON
schema, as a JSON object with the same fields (`engine/agents/shapes.py` defines both). The
reasoning-first answers (lead, analyzer, judge) are parsed strictly: a `REASONING:` line, then the
answer's own marker, then the answer, and nothing that could be half of something else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import OutputFormatError

PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<tag>[\w.+-]*)[^\n`]*$")
_STEP = re.compile(r"^\s*(?:(?:step\s*)?\d+\s*[.):]|[-*•])\s+(?P<text>\S.*)$", re.IGNORECASE)
_REASONING_LABEL = re.compile(r"^\s*(?:\*\*)?(?:reasoning|thoughts?|plan)(?:\*\*)?\s*:\s*", re.IGNORECASE)


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass
class CodeBlock:
    tag: str
    code: str
    start_line: int  # the opening fence's line
    end_line: int  # the closing fence's line


def code_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block, in order. An opening fence that is never closed is an error."""
    lines = normalize_newlines(text).split("\n")
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, tag = match.group("fence"), match.group("tag").lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = lines[j].strip()
            if close and close[0] == fence[0] and set(close) == {fence[0]} and len(close) >= len(fence):
                break
            body.append(lines[j])
            j += 1
        else:
            raise OutputFormatError(f"the code block opened on line {i + 1} is never closed")
        blocks.append(CodeBlock(tag, "\n".join(body), i, j))
        i = j + 1
    return blocks


@dataclass
class WorkerAnswer:
    reasoning: str
    script: str


def json_answer(text: str, fields: dict[str, type], who: str) -> dict[str, Any] | None:
    """The answer's fields when `text` is a JSON object (the JSON form), else None (the text form).

    A text that starts with `{` is held to the JSON form: exactly these fields, of these types.
    """
    body = text.strip()
    if not body.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise OutputFormatError(f"the {who}'s JSON answer is not valid JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(data, dict) or set(data) != set(fields):
        keys = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__
        raise OutputFormatError(f"the {who}'s JSON answer must have exactly {', '.join(fields)}; it has {keys or 'nothing'}")
    for key, kind in fields.items():
        if not isinstance(data[key], kind):
            raise OutputFormatError(f"the {who}'s JSON field '{key}' must be a {kind.__name__}")
    return data


def parse_worker_output(text: str) -> WorkerAnswer:
    """Exactly one whole Python script in a fenced block and the reasoning around it (the line after
    the block that the shape asks for, or text before it), or the JSON form {"script", "reasoning"}."""
    if not text.strip():
        raise OutputFormatError("the worker returned nothing")
    data = json_answer(text, {"reasoning": str, "script": str}, "worker")
    if data is not None:
        script = normalize_newlines(data["script"]).strip("\n")
        if not script.strip():
            raise OutputFormatError("the worker's script is empty")
        return WorkerAnswer(reasoning=data["reasoning"].strip(), script=script + "\n")
    blocks = code_blocks(text)
    python_blocks = [b for b in blocks if b.tag in PYTHON_TAGS]
    if not python_blocks:
        if blocks:
            tags = ", ".join(sorted({b.tag for b in blocks}))
            raise OutputFormatError(f"the worker's code block is not Python (tagged {tags})")
        raise OutputFormatError("the worker's answer has no ```python code block with the script")
    if len(python_blocks) > 1:
        raise OutputFormatError(
            f"the worker's answer has {len(python_blocks)} Python code blocks; one block with the whole script is expected"
        )
    block = python_blocks[0]
    script = block.code.strip("\n")
    if not script.strip():
        raise OutputFormatError("the worker's code block is empty")
    lines = normalize_newlines(text).split("\n")
    before = _REASONING_LABEL.sub("", "\n".join(lines[: block.start_line]).strip(), count=1).strip()
    # The shape asks for the line after the block (what changed); a teacher not held to it may reason first.
    after = _REASONING_LABEL.sub("", "\n".join(lines[block.end_line + 1:]).strip(), count=1).strip()
    reasoning = "\n".join(part for part in (before, after) if part)
    return WorkerAnswer(reasoning=reasoning, script=script + "\n")


_LIST_NUMBERS = re.compile(r"^(?:\d+[.)](?:\s+|$))+")
_WORD = re.compile(r"[^\W\d_]")  # a letter


def parse_steps(text: str, max_steps: int) -> list[str]:
    """Numbered or bulleted lines (or the JSON form {"steps": [...]}) become steps, in order, without
    duplicates."""
    try:
        data = json_answer(text, {"steps": list}, "planner")
    except OutputFormatError:
        return []
    if data is not None:
        candidates = [str(s) for s in data["steps"] if isinstance(s, str)]
    else:
        candidates = []
        for line in normalize_newlines(text).split("\n"):
            match = _STEP.match(line)
            if match:
                candidates.append(match.group("text"))
    steps: list[str] = []
    for candidate in candidates:
        step = " ".join(candidate.split()).strip("*").strip()
        # A small model under the planner's grammar can loop on the list marker ("1. 1. 1. ..."):
        # leading list numbers go, and a line left with no letter is no step.
        step = _LIST_NUMBERS.sub("", step).strip()
        if not _WORD.search(step):
            continue
        if step.lower() not in (s.lower() for s in steps):
            steps.append(step[:300])
    return steps[:max_steps]


LABELS = ("redo", "further_edit", "accepted")
_LABEL_WORDS = {
    "REDO": "redo",
    "FURTHER_EDIT": "further_edit",
    "FURTHER EDIT": "further_edit",
    "FURTHER-EDIT": "further_edit",
    "EDIT": "further_edit",
    "ACCEPTED": "accepted",
    "ACCEPT": "accepted",
}
_LABEL_RE = re.compile(r"\b(FURTHER[ _-]EDIT|ACCEPTED|ACCEPT|REDO|EDIT)\b", re.IGNORECASE)


def parse_label(text: str) -> str | None:
    """The one label the analyzer named, or None when it named none or several."""
    found = {_LABEL_WORDS[m.group(1).upper()] for m in _LABEL_RE.finditer(normalize_newlines(text))}
    return found.pop() if len(found) == 1 else None


# -- reasoning first, then the answer (lead, analyzer, judge) -----------------------------------
_MARKER = r"[ \t]*(?:\*\*)?{name}(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*"


def _reasoned(text: str, answer_marker: str, who: str) -> tuple[str, str]:
    """(reasoning, answer) from `REASONING: ...` on the first line and `<MARKER>: ...` after it.

    Strict: the reasoning is one line, the marker starts the next non-blank line, neither marker
    starts another line, and the answer is what follows its marker to the end.
    """
    lines = normalize_newlines(text).strip().split("\n")
    first = re.match(_MARKER.format(name="REASONING") + r"(?P<rest>.*)$", lines[0], re.IGNORECASE)
    if first is None:
        raise OutputFormatError(f"the {who}'s answer does not start with REASONING:")
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    second = re.match(_MARKER.format(name=answer_marker) + r"(?P<rest>.*)$", rest[0], re.IGNORECASE) if rest else None
    if second is None:
        raise OutputFormatError(f"the {who}'s answer has no {answer_marker}: line after its reasoning")
    again = re.compile(r"^(?:" + _MARKER.format(name="REASONING") + "|" + _MARKER.format(name=answer_marker) + ")",
                       re.IGNORECASE)
    if any(again.match(line) for line in rest[1:]):
        raise OutputFormatError(f"the {who}'s answer repeats REASONING: or {answer_marker}:")
    return first.group("rest").strip(), "\n".join([second.group("rest")] + rest[1:]).strip()


@dataclass(frozen=True)
class LeadAnswer:
    reasoning: str
    instruction: str


def _reasoned_answer(text: str, marker: str, key: str, who: str) -> tuple[str, str]:
    """(reasoning, answer) from the text form (`REASONING:` then `<MARKER>:`) or the JSON form."""
    data = json_answer(text, {"reasoning": str, key: str}, who)
    if data is not None:
        return data["reasoning"].strip(), normalize_newlines(data[key]).strip()
    return _reasoned(text, marker, who)


def parse_lead_output(text: str) -> LeadAnswer:
    """`REASONING: ...` then `INSTRUCTION: ...` (prose, no code fence), or the JSON form."""
    reasoning, instruction = _reasoned_answer(text, "INSTRUCTION", "instruction", "lead")
    if not instruction:
        raise OutputFormatError("the lead's instruction is empty")
    if "```" in instruction or "~~~" in instruction:
        raise OutputFormatError("the lead's instruction holds a code fence; it must be prose")
    return LeadAnswer(reasoning, instruction)


@dataclass(frozen=True)
class AnalyzerAnswer:
    reasoning: str
    label: str  # redo | further_edit | accepted


_STRICT_LABELS = {"ACCEPTED": "accepted", "REDO": "redo", "EDIT": "further_edit"}


def parse_analyzer_output(text: str) -> AnalyzerAnswer:
    """`REASONING: ...` then `LABEL: ACCEPTED|REDO|EDIT` (nothing else on that line), or the JSON form."""
    reasoning, word = _reasoned_answer(text, "LABEL", "label", "analyzer")
    label = _STRICT_LABELS.get(word.strip().rstrip(".").strip().upper())
    if label is None:
        raise OutputFormatError(f"the analyzer's label must be ACCEPTED, REDO or EDIT, not {word[:40]!r}")
    return AnalyzerAnswer(reasoning, label)


@dataclass(frozen=True)
class JudgeAnswer:
    reasoning: str
    verdict: str  # A | B


def parse_judge_output(text: str) -> JudgeAnswer:
    """`REASONING: ...` then `VERDICT: A|B`, or the JSON form."""
    reasoning, word = _reasoned_answer(text, "VERDICT", "verdict", "judge")
    verdict = word.strip().rstrip(".").strip().upper()
    if verdict not in ("A", "B"):
        raise OutputFormatError(f"the judge's verdict must be A or B, not {word[:40]!r}")
    return JudgeAnswer(reasoning, verdict)
