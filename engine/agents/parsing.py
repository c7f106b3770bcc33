"""Strict parsers for model output. Each returns a clean result or raises `OutputFormatError`.

Model text is untrusted: it may hold several code blocks, unclosed fences, CRLF line ends, ANSI
escapes or markup. Nothing here interprets it; the parsers only cut it, and they never return half a
script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    start_line: int


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
        blocks.append(CodeBlock(tag, "\n".join(body), i))
        i = j + 1
    return blocks


@dataclass
class WorkerAnswer:
    reasoning: str
    script: str


def parse_worker_output(text: str) -> WorkerAnswer:
    """Reasoning (the text before the code) and exactly one whole Python script in a fenced block."""
    if not text.strip():
        raise OutputFormatError("the worker returned nothing")
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
    reasoning = "\n".join(lines[: block.start_line]).strip()
    reasoning = _REASONING_LABEL.sub("", reasoning, count=1).strip()
    return WorkerAnswer(reasoning=reasoning, script=script + "\n")


def parse_steps(text: str, max_steps: int) -> list[str]:
    """Numbered or bulleted lines become steps, in order, without duplicates."""
    steps: list[str] = []
    for line in normalize_newlines(text).split("\n"):
        match = _STEP.match(line)
        if not match:
            continue
        step = match.group("text").strip().strip("*").strip()
        if step and step.lower() not in (s.lower() for s in steps):
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
