"""Feedback analyzer: classifies the user's free-text feedback as Redo, Further edit or Accepted.

The analyzer reasons first (`REASONING: ...`), then names one label (`LABEL: ACCEPTED|REDO|EDIT`),
parsed strictly. A line that starts with `accept:`, `redo:` or `edit:` carries its label and the
model is not asked.

A tiny teacher's generated label is close to a guess, so where the teacher can score, the label
comes from scores instead, and so does a calibrated "unsure" (`[analyzer] scoring`):

- "labels": the teacher-forced log-probability of each of the three label words after the
  analyzer's own reasoning, normalized over the three;
- "channel": the log-probability of the user's words under each label's examples (what replies
  of satisfied users, of users who want a redo, of users who want more look like), normalized over
  the three. Small models model text far better than they name classes (the noisy-channel
  classifier of Min et al., 2022); the examples are the labelled lines shipped in
  `engine/prompts/data` and the analyzer prompt's own demonstrations.

Below `unsure_below` for the best label the analyzer is unsure, and Further edit applies: the label
that loses nothing (the proposal is kept as the current script and the user can say more).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.agents.parsing import LABELS, parse_analyzer_output, parse_label
from engine.agents.shapes import ANALYZER, LABEL_WORDS
from engine.config import AnalyzerConfig
from engine.errors import InputError, OutputFormatError, ScoringUnsupported, TeacherError
from engine.prompts import builtin
from engine.prompts.book import DEFAULT_BOOK, PromptCall
from engine.teachers.base import Generation, Message
from engine.teachers.choices import choice_logprobs

SYSTEM = DEFAULT_BOOK["analyzer"].system("off")

LABEL_NAMES = {"redo": "Redo", "further_edit": "Further edit", "accepted": "Accepted"}
SOURCES = {"explicit": "explicit prefix", "analyzer": "analyzer", "scored": "analyzer, scored",
           "unsure": "analyzer unsure; safe default", "default": "analyzer unsure; safe default", "user": "your choice"}
_EXPLICIT = re.compile(r"^\s*(accept|accepted|redo|edit)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_EXPLICIT_LABEL = {"accept": "accepted", "accepted": "accepted", "redo": "redo", "edit": "further_edit"}
LABELLED_FEEDBACK = Path(__file__).resolve().parent.parent / "prompts" / "data" / "feedback_labelled.jsonl"


@dataclass
class Classification:
    label: str  # redo | further_edit | accepted
    source: str  # explicit | analyzer | scored | unsure | default | user
    feedback: str  # the feedback text without an explicit prefix
    raw: str = ""  # what the analyzer answered
    reasoning: str = ""
    probabilities: dict[str, float] | None = None  # label -> probability, where the teacher could score

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
    return DEFAULT_BOOK.analyzer(feedback, step).messages()


def parse_classification(generation: Generation, feedback: str) -> Classification:
    """The generated label: strictly parsed; an unconstrained answer may also be the bare label word."""
    try:
        answer = parse_analyzer_output(generation.text)
        return Classification(answer.label, "analyzer", feedback, generation.text, answer.reasoning)
    except OutputFormatError:
        label = None if generation.constraint is not None else parse_label(generation.text)
    if label is None:
        return Classification("further_edit", "default", feedback, generation.text)
    return Classification(label, "analyzer", feedback, generation.text)


def answer_label(generation: Generation) -> str | None:
    """The label an answer names: strictly parsed; an unconstrained answer may be the bare word. None: no label."""
    answer = parse_classification(generation, "")
    return answer.label if answer.source == "analyzer" else None


# -- scores ------------------------------------------------------------------------------------
def _normalize(logprobs: dict[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    weights = {label: math.exp(lp - top) for label, lp in logprobs.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


def label_probabilities(teacher: object, messages: list[Message], reasoning: str) -> dict[str, float]:
    """p(label | prompt, reasoning) over the three labels, from teacher-forced log-probabilities."""
    prefix = f"REASONING: {reasoning}\nLABEL:"
    words = [" " + LABEL_WORDS[label] for label in LABELS]
    return _normalize(dict(zip(LABELS, choice_logprobs(teacher, messages, prefix, words))))


@lru_cache(maxsize=1)
def shipped_examples() -> dict[str, tuple[str, ...]]:
    """The labelled feedback lines shipped for the channel scorer (the set's train split; the
    benchmark measures on the other split)."""
    out: dict[str, list[str]] = {label: [] for label in LABELS}
    for line in LABELLED_FEEDBACK.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] == "train":
            out[row["label"]].append(row["feedback"])
    return {label: tuple(lines) for label, lines in out.items()}


def examples_for(call: PromptCall | None) -> dict[str, tuple[str, ...]]:
    """The shipped labelled lines, and the prompt's own demonstrations' feedback (a saved analyzer
    prompt made from the user's dataset brings the user's own words)."""
    out = {label: list(lines) for label, lines in shipped_examples().items()}
    if call is not None:
        by_word = {word: label for label, word in LABEL_WORDS.items()}
        for demo in call.prompt.demos:
            label, text = by_word.get(demo.fields.get("label", "")), demo.fields.get("feedback")
            if label in out and isinstance(text, str) and text not in out[label]:
                out[label].append(text)
    return {label: tuple(lines) for label, lines in out.items()}


def channel_probabilities(teacher: object, examples: dict[str, tuple[str, ...]], feedback: str) -> dict[str, float]:
    """p(label | feedback) ∝ p(feedback | label's examples): one teacher-forced score per label."""
    own = getattr(teacher, "response_logprob", None)  # the embedded backend caches the three contexts
    logprobs = {}
    for label in LABELS:
        messages = builtin.channel_messages(label, examples[label])
        if own is not None:
            logprobs[label] = own(messages, feedback)
        else:
            logprobs[label] = float(sum(teacher.score(messages, feedback, top_logprobs=0).logprobs))  # type: ignore[attr-defined]
    return _normalize(logprobs)


def decide(answer: Classification, probabilities: dict[str, float], unsure_below: float) -> Classification:
    best = max(probabilities, key=probabilities.__getitem__)
    if probabilities[best] < unsure_below:
        return Classification("further_edit", "unsure", answer.feedback, answer.raw, answer.reasoning, probabilities)
    return Classification(best, "scored", answer.feedback, answer.raw, answer.reasoning, probabilities)


def classify(generation: Generation, feedback: str, *, teacher: object | None, call: PromptCall | None,
             settings: AnalyzerConfig, form: str = "off") -> Classification:
    """The label for `feedback`: from scores where `settings.scoring` asks for them and the teacher
    can score, else the generated label (or Further edit when there is none)."""
    answer = parse_classification(generation, feedback)
    if settings.scoring == "off" or teacher is None or not getattr(teacher, "can_score", False):
        return answer
    try:
        if settings.scoring == "channel":
            probabilities = channel_probabilities(teacher, examples_for(call), feedback)
        elif answer.source == "analyzer" and answer.reasoning and form != "json" and call is not None:
            probabilities = label_probabilities(teacher, call.messages(form), answer.reasoning)
        else:
            return answer  # "labels" needs the strict answer's reasoning, in the text form
    except (ScoringUnsupported, TeacherError):
        return answer
    return decide(answer, probabilities, settings.unsure_below)


def label_answer(label: str) -> str:
    """The analyzer's answer that names `label` in its text form (a hard label for the dataset: the
    user's own label, so the reasoning says only that)."""
    return ANALYZER.render({"reasoning": "The user named the label.", "label": LABEL_WORDS[label]}, "text")
