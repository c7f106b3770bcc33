"""One line (or a few) above the session's tabs that says what the session waits for: planning, a
stalled step and the keys that help, a finished session, no session. It stays until the next one
replaces it, whichever tab is open (a toast vanishes; the issue was that nothing stayed on screen)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

KINDS = ("info", "warning", "error", "success")


class Banner(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.display = False
        self.text = ""

    def say(self, text: Text | str, kind: str = "info") -> None:
        body = text if isinstance(text, Text) else Text(text)  # plain text: engine and model words never become markup
        self.text = body.plain
        self.update(body)
        self.set_classes(f"banner-{kind if kind in KINDS else 'info'}")
        self.display = True

    def clear(self) -> None:
        self.text = ""
        self.display = False
