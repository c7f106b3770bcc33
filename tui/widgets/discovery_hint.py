"""The first-start hint: the teachers in use, the models found on this machine, one key to add one.

Why it stays until dismissed: a toast that vanishes after six seconds is how a user ends up working
on the 135M default for weeks with a 7B coder pulled in Ollama. The hint is dismissed once (h, the
session screen's key, so that it works wherever the focus is) and the choice is remembered; F6 shows
it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from typing import TYPE_CHECKING

from engine.config import Config
from engine.execution.sanitize import sanitize

if TYPE_CHECKING:
    from engine.teachers.discovery import Discovery, FoundModel


class DiscoveryHint(Vertical):
    BINDINGS = [
        # The hint says its keys itself; the footer keeps its room for the screen's.
        Binding("a", "add", "Add teacher", id="discovery.add", show=False),
    ]

    @dataclass
    class AddRequested(Message):
        """The user chose a found model as the worker's first teacher."""

        found: FoundModel

    @dataclass
    class Dismissed(Message):
        """The user closed the hint; it does not come back at the next start."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.addable: list[FoundModel] = []

    def compose(self):
        yield Static("", id="discovery-teachers")
        yield OptionList(id="discovery-models")
        yield Static("", id="discovery-keys", classes="dim-text")

    def show(self, config: Config, found: Discovery, teacher_status: dict[str, str | None]) -> None:
        """What is in use, what was found, and the keys; an added model shows as configured."""
        from engine.teachers.discovery import configured_as, describe_model, describe_server

        worker = " → ".join(
            f"{name} {'✓' if teacher_status.get(name, '') is None else ('✗' if teacher_status.get(name) else '…')}"
            for name in config.agents["worker"])
        self.query_one("#discovery-teachers", Static).update(Text(f"The worker's teachers: {worker}"))
        listing = self.query_one("#discovery-models", OptionList)
        listing.clear_options()
        self.addable = []
        for server in found.servers:
            if not server.running and server.kind != "ollama":
                continue  # a port nobody listens on is not news; Ollama's absence is
            listing.add_option(Option(Text(sanitize(describe_server(server)), style="bold"), disabled=True))
            for model in server.models:
                name = configured_as(config, model)
                line = Text(f"  {sanitize(describe_model(model))}")  # names a server chose
                if name:
                    line.append(f"  [configured as '{name}']", style="dim")
                    listing.add_option(Option(line, disabled=True))
                else:
                    listing.add_option(Option(line, id=f"found-{len(self.addable)}"))
                    self.addable.append(model)
        keys = self.query_one("#discovery-keys", Static)
        if self.addable:
            keys.update(Text("↑/↓ choose · a or Enter adds it as the worker's first teacher (the others stay as "
                             "fallbacks) · h hides this hint · F6 shows it again"))
            first = next(i for i, o in enumerate(listing.options) if not o.disabled)
            listing.highlighted = first
        else:
            keys.update(Text("No model to add. With Ollama: `ollama pull qwen2.5-coder:7b`, then F6 · h hides this "
                             "hint"))

    @property
    def chosen(self) -> FoundModel | None:
        listing = self.query_one("#discovery-models", OptionList)
        if listing.highlighted is None:
            return None
        option = listing.get_option_at_index(listing.highlighted)
        if option.disabled or not option.id:
            return None
        return self.addable[int(option.id.removeprefix("found-"))]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_add()

    def action_add(self) -> None:
        chosen = self.chosen
        if chosen is None:
            self.app.notify("Choose a found model first (↑/↓)", severity="warning")
            return
        self.post_message(self.AddRequested(chosen))

    def action_dismiss(self) -> None:
        self.post_message(self.Dismissed())
