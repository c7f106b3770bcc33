"""Keys typed where no text can go are not lost: they are handed on (see `ForwardsTyping`)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message


class ForwardsTyping:
    """Mixin for a widget that takes no text (a file tree, a list): a printable key typed on it is
    posted as `TypedText`, for the screen to put where the user meant to type.

    Space is the widget's own key (it ticks or expands) only as the first key of a visit: once the user
    is typing, a space is part of the text. Why: a quick typist's burst (or a paste the terminal does
    not bracket) reaches this widget whole before the focus follows the first letter; its spaces
    ticked and unticked teachers and expanded folders, and the request lost every space."""

    _typing = False  # a printable key was forwarded since the focus came here

    @dataclass
    class TypedText(Message):
        text: str

    def on_focus(self, event: events.Focus) -> None:
        self._typing = False

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character and (event.character != " " or self._typing):
            self._typing = True
            event.stop()
            event.prevent_default()
            self.post_message(ForwardsTyping.TypedText(event.character))
        elif not event.is_printable:
            self._typing = False  # an arrow, Enter, Tab: the user is steering the widget again
