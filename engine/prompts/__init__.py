"""Every agent's prompt, in one place: built in, overridable by name, versioned by a hash.

    from engine.prompts import load_prompt_book
    book = load_prompt_book(config)            # the built-in prompts, or the versions [prompts] pins
    call = book.worker(instruction, script)    # a PromptCall
    call.messages(form), call.constraint(), call.version

`builtin` holds the texts, `book` the typed prompts and their versions, `saved` the versions on
disk (`DATA/prompts/`), `optimize` the demonstration search behind `shake prompts optimize`.
"""

from __future__ import annotations

import dataclasses

from engine.prompts.book import DEFAULT_BOOK, AgentPrompt, Demo, PromptBook, PromptCall, builtin_prompt

__all__ = ["DEFAULT_BOOK", "AgentPrompt", "Demo", "PromptBook", "PromptCall", "builtin_prompt", "load_prompt_book"]


def load_prompt_book(config) -> PromptBook:
    """The prompts a session uses: each agent's pinned version from `[prompts]`, else the built-in one.

    A pinned version that is missing or unusable is a `ConfigError` naming it (never a silent fallback).
    """
    from engine.prompts.saved import load_prompt

    pinned = {agent: load_prompt(config.data_dir, version).prompt
              for agent, version in dataclasses.asdict(config.prompts).items() if version}
    return PromptBook(pinned)
