"""Feedback analyzer: classifies the user's free-text feedback as Redo, Further edit or Accepted.

A tiny teacher misjudges free text now and then, so: a short prompt that asks for one word, a strict
parse that accepts exactly one label, and Further edit (the label that loses nothing) when unsure.
A line that starts with `accept:`, `redo:` or `edit:` carries its label and the model is not asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.agents.parsing import parse_label
from engine.errors import InputError
from engine.teachers.base import Generation, Message

SYSTEM = (
    "You classify a user's feedback on a change to a Python script. Answer with exactly one word:\n"
    "ACCEPTED - the user is satisfied with the change.\n"
    "REDO - the change is wrong and must be done again from the start.\n"
    "EDIT - the change is partly right but needs more changes."
)

LABEL_NAMES = {"redo": "Redo", "further_edit": "Further edit", "accepted": "Accepted"}
_EXPLICIT = re.compile(r"^\s*(accept|accepted|redo|edit)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_EXPLICIT_LABEL = {"accept": "accepted", "accepted": "accepted", "redo": "redo", "edit": "further_edit"}


@dataclass
class Classification:
    label: str  # redo | further_edit | accepted
    source: str  # explicit | analyzer | default | user
    feedback: str  # the feedback text without an explicit prefix
    raw: str = ""  # what the analyzer answered

    @property
    def name(self) -> str:
        return LABEL_NAMES[self.label]


def explicit_label(feedback: str) -> Classification | None:
    match = _EXPLICIT.match(feedback)
    if not match:
        return None
    return Classification(_EXPLICIT_LABEL[match.group(1).lower()], "explicit", match.group(2).strip())


def check_feedback(feedback: str) -> str:
    text = feedback.strip()
    if not text:
        raise InputError("feedback is empty; say what you think of the change, or start with accept:, redo: or edit:")
    return text


def analyzer_messages(feedback: str, step: str) -> list[Message]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Step: {step}\nFeedback: {feedback}\nOne word:"},
    ]


def parse_classification(generation: Generation, feedback: str) -> Classification:
    label = parse_label(generation.text)
    if label is None:
        return Classification("further_edit", "default", feedback, generation.text)
    return Classification(label, "analyzer", feedback, generation.text)


_LABEL_ANSWER = {"accepted": "ACCEPTED", "redo": "REDO", "further_edit": "EDIT"}


def label_answer(label: str) -> str:
    """The analyzer's answer that names `label`, as the prompt asks for it (a hard label for the dataset)."""
    return _LABEL_ANSWER[label]
