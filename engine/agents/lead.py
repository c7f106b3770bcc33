"""Project lead: turns the current step, the current script and any feedback or error into one instruction."""

from __future__ import annotations

from engine.teachers.base import Generation, Message

SYSTEM = (
    "You are the project lead for changes to a Python script. Write one clear instruction for the "
    "programmer who will rewrite the script. Say exactly what to change. Do not write the code yourself. "
    "Answer with the instruction only, in at most five sentences."
)

MAX_INSTRUCTION_CHARS = 2000


def instruction_messages(
    request: str,
    step: str,
    script: str,
    *,
    error: str | None = None,
    failed_script: str | None = None,
    feedback: str | None = None,
    feedback_kind: str | None = None,
    previous_output: str | None = None,
) -> list[Message]:
    parts = [f"Overall request: {request}", f"Current step: {step}", f"Current script:\n```python\n{script}```"]
    if error is not None:
        parts.append(f"The programmer's last script failed when it ran:\n```python\n{failed_script or ''}```")
        parts.append(f"Error:\n{error}")
        parts.append("Write an instruction that fixes this error.")
    elif feedback_kind == "redo":
        parts.append(f"The programmer's last attempt was rejected by the user:\n```python\n{previous_output or ''}```")
        parts.append(f"User feedback: {feedback}")
        parts.append("Write a new instruction for this step that avoids that mistake, starting again from the current script.")
    elif feedback_kind == "further_edit":
        parts.append(f"User feedback on the current script: {feedback}")
        parts.append("Write an instruction that refines the current script as the user asks.")
    else:
        parts.append("Write the instruction for this step.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_instruction(generation: Generation, step: str) -> tuple[str, bool]:
    """The instruction text; falls back to the step itself when the lead said nothing usable.

    Small models loop: a paragraph said again is dropped, so the worker gets each point once.
    """
    seen: set[str] = set()
    paragraphs = []
    for paragraph in generation.text.replace("\r\n", "\n").split("\n\n"):
        key = " ".join(paragraph.split())
        if key and key not in seen:
            seen.add(key)
            paragraphs.append(paragraph.strip("\n"))
    text = "\n\n".join(paragraphs).strip()
    if not text:
        return step, True
    return text[:MAX_INSTRUCTION_CHARS], False
