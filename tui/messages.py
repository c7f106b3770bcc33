"""Messages between the engine's worker threads, widgets and screens."""

from __future__ import annotations

from textual.message import Message

from engine.agents.analyzer import Classification
from engine.session import SessionEvent


class EngineEvent(Message):
    """Something the session did (plan, instruction, run, proposal, row written...)."""

    def __init__(self, event: SessionEvent) -> None:
        super().__init__()
        self.event = event


class TokenStreamed(Message):
    """A piece of text an agent's teacher just generated."""

    def __init__(self, agent: str, text: str) -> None:
        super().__init__()
        self.agent = agent
        self.text = text


class FeedbackSubmitted(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LabelCommitted(Message):
    """The user confirmed (or overrode) the analyzer's label."""

    def __init__(self, classification: Classification) -> None:
        super().__init__()
        self.classification = classification


class EngineBusy(Message):
    def __init__(self, busy: bool, what: str = "") -> None:
        super().__init__()
        self.busy = busy
        self.what = what
