"""Keys typed where no text can go are not lost: they are handed on (see `ForwardsTyping`)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message


class ForwardsTyping:
    """Mixin for a widget that takes no text (a file tree, a list): a printable key typed on it is
    posted as `TypedText`, for the screen to put where the user meant to type. Space is left to the
    widget (it ticks or expands)."""

    @dataclass
    class TypedText(Message):
        text: str

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character and event.character != " ":
            event.stop()
            event.prevent_default()
            self.post_message(ForwardsTyping.TypedText(event.character))
