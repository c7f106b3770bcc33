"""What can be saved of a damaged session file: every row that still parses.

A session file is written whole and atomically (`atomic.py`), so the store itself never leaves one
half-written; but a disk that filled under another program, a copy cut short, or an editor can. Such a
file is one JSON object whose tables come in the order the store writes them (`meta`, `state`, then
`rows`, one entry per row), so a file cut at any byte still holds, whole, the state and every row
written before the cut. `salvage` reads the file entry by entry instead of as one document: each entry
that parses is kept, and it stops at the first that does not (the cut).

Each row is then checked on its own, with the same reader as a whole file (`parse_session_file`, so a
version-1 file is upgraded the same way): a row that parses but breaks its record is counted as lost,
not kept. Without its session state (cut before the rows, or not a session file at all) nothing can
be rebuilt, and the file stays as it is.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

from engine.store.codec import SchemaError
from engine.store.schema import KNOWN_SCHEMAS, SessionFile, parse_session_file

TABLES = ("meta", "state", "rows")
_WHITESPACE = " \t\n\r"


@dataclass(frozen=True)
class Salvage:
    """The rebuilt session (None where its state is gone), and how many rows were kept and lost."""

    file: SessionFile | None
    recovered: int
    lost: int  # rows begun in the file that did not parse, or that broke their record
    cut_at: int | None  # the character offset where reading stopped; None when the JSON was whole


class _Cut(Exception):
    """The text ends, or stops being JSON, here."""


def _text(data: bytes) -> str:
    """The UTF-8 text before the first byte that is not (a cut may split a character in two)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        return decoder.decode(data, final=False)
    except UnicodeDecodeError as err:
        return data[: err.start].decode("utf-8")


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.decoder = json.JSONDecoder()
        self.entry_at: int | None = None  # where the entry being read began; None between entries

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in _WHITESPACE:
            self.at += 1

    def expect(self, char: str) -> None:
        self.skip()
        if not self.text.startswith(char, self.at):
            raise _Cut
        self.at += 1

    def peek(self, char: str) -> bool:
        self.skip()
        return self.text.startswith(char, self.at)

    def value(self) -> Any:
        self.skip()
        try:
            value, self.at = self.decoder.raw_decode(self.text, self.at)
        except (ValueError, RecursionError):
            raise _Cut from None
        return value

    def key(self) -> str:
        key = self.value()
        if not isinstance(key, str):
            raise _Cut
        self.expect(":")
        return key

    def entries(self, into: dict[str, Any]) -> None:
        """An object's entries into `into`, each whole or not at all."""
        self.expect("{")
        if self.peek("}"):
            self.at += 1
            return
        while True:
            self.skip()
            self.entry_at = self.at
            key = self.key()
            into[key] = self.value()
            self.entry_at = None
            if self.peek(","):
                self.at += 1
                continue
            self.expect("}")
            return


def salvage(data: bytes, name: str) -> Salvage:
    """Rebuild the session file `data` (the bytes of `name`) from every entry that parses."""
    reader = _Reader(_text(data))
    tables: dict[str, dict[str, Any]] = {}
    rows_begun = False
    cut_at: int | None = None
    try:
        reader.expect("{")
        while not reader.peek("}"):
            table = reader.key()
            if table not in TABLES:
                return Salvage(None, 0, 0, None)  # not a session file: nothing of it is a row
            tables[table] = {}
            rows_begun = table == "rows"
            reader.entries(tables[table])
            if not reader.peek(","):
                break
            reader.at += 1
        reader.expect("}")
    except _Cut:
        cut_at = reader.at
    rows = tables.get("rows", {})
    # A row whose key or value the cut went through was begun, and is lost with the rest.
    begun = reader.entry_at is not None and reader.entry_at < len(reader.text)
    lost = 1 if rows_begun and cut_at is not None and begun else 0
    meta = {"meta": tables.get("meta", {}), "state": tables.get("state", {})}
    version = meta["meta"].get("1") or {}
    schema = version.get("schema", 1) if isinstance(version, dict) else None  # as parse_session_file reads it
    if schema not in KNOWN_SCHEMAS:
        return Salvage(None, 0, len(rows) + lost, cut_at)  # a newer shake's file is never rewritten by this one
    try:
        state = parse_session_file({**meta, "rows": {}}, name).state
    except SchemaError:
        return Salvage(None, 0, len(rows) + lost, cut_at)
    kept = {}
    for key, raw in rows.items():
        try:
            kept.update(parse_session_file({**meta, "rows": {key: raw}}, name).rows)
        except SchemaError:
            lost += 1
    return Salvage(SessionFile(schema, state, kept), len(kept), lost, cut_at)
