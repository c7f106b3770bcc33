"""Feedback: a line with history (up/down), then the analyzer's label to confirm or override."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from engine.agents.analyzer import LABEL_NAMES, Classification
from engine.execution.sanitize import sanitize


class FeedbackInput(Input):
    BINDINGS = [
        Binding("up", "history(-1)", "Previous", show=False, id="feedback.history_previous"),
        Binding("down", "history(1)", "Next", show=False, id="feedback.history_next"),
    ]

    def __init__(self, history: list[str], **kwargs) -> None:
        super().__init__(placeholder="i: your feedback (or accept: / redo: / edit: …), Enter sends, Esc leaves",
                         **kwargs)
        self.history = history
        self._pos = len(history)

    def action_history(self, delta: int) -> None:
        if not self.history:
            return
        self._pos = max(0, min(len(self.history), self._pos + delta))
        self.value = self.history[self._pos] if self._pos < len(self.history) else ""
        self.cursor_position = len(self.value)

    def remember(self, text: str) -> None:
        if not self.history or self.history[-1] != text:
            self.history.append(text)
        del self.history[:-200]
        self._pos = len(self.history)


class LabelConfirm(Static, can_focus=True):
    """Shows the label before it is committed; one key commits or overrides it."""

    @dataclass
    class Committed(Message):
        """The user confirmed (or overrode) the analyzer's label."""

        classification: Classification

    BINDINGS = [
        Binding("enter", "commit", "Commit", tooltip="Commit the label", id="feedback.commit"),
        # The label line itself names a / r / m; the footer keeps its room for the screen's keys. Not `e`
        # for Further edit: on the session screen `e` opens the editor, and a key means one thing per screen.
        Binding("a", "override('accepted')", "Accepted", id="feedback.accept", show=False),
        Binding("r", "override('redo')", "Redo", id="feedback.redo", show=False),
        Binding("m", "override('further_edit')", "Further edit", id="feedback.edit", show=False),
        Binding("escape", "discard", "Discard", id="feedback.discard"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.classification: Classification | None = None
        self.said = ""  # the feedback being labelled: the input is empty meanwhile, so it is shown here

    def propose(self, classification: Classification, said: str = "") -> None:
        self.classification, self.said = classification, said
        origin = {"explicit": "from your prefix", "analyzer": "the analyzer's reading",
                  "default": "the analyzer was unsure: safe default"}.get(classification.source, classification.source)
        self._show(f"Label: {classification.name} ({origin}) — Enter commits · a Accepted · r Redo · m Further edit "
                   "· Esc discard")
        self.display = True
        self.focus()

    def _show(self, line: str) -> None:
        text = Text()
        if self.said:
            text.append(f"“{sanitize(self.said)}”\n", style="not bold italic")  # the user's words: never markup
        text.append(line)
        self.update(text)

    def action_commit(self) -> None:
        if self.classification is not None:
            self.post_message(self.Committed(self.classification))
        self._close()

    def action_override(self, label: str) -> None:
        if self.classification is not None:
            c = self.classification
            self.classification = Classification(label, "user" if label != c.label else c.source, c.feedback, c.raw)
            self._show(f"Label: {LABEL_NAMES[label]} (your choice) — Enter commits · a / r / m change it · Esc discard")

    def action_discard(self) -> None:
        self.classification = None
        self._close()

    def _close(self) -> None:
        self.display = False
        self.parent.query_one(FeedbackInput).focus()


class FeedbackBox(Vertical):
    @dataclass
    class Submitted(Message):
        """Feedback text the user sent, before the analyzer reads it."""

        text: str

    def __init__(self, history: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self._history = history
        self._sent = ""  # the last feedback sent, shown beside its label

    def compose(self):
        yield FeedbackInput(self._history, id="feedback-input")
        confirm = LabelConfirm(id="label-confirm")
        confirm.display = False
        yield confirm

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            self.app.notify("Type your feedback first (accept: / redo: / edit: give the label directly)", severity="warning")
            return
        box = self.query_one(FeedbackInput)
        box.remember(text)
        box.value = ""
        self._sent = text
        self.post_message(self.Submitted(text))

    def confirm(self, classification: Classification) -> None:
        self.query_one(LabelConfirm).propose(classification, self._sent)
