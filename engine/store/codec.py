"""Typed records to JSON and back, checked field by field.

Why a codec of our own: the dataset and the session state cross every seam of the product (engine,
trainer, app, exports), and a dict that crosses a seam is where the dataset bugs hid. Every record in
`schema.py` is a dataclass; `encode` turns one into plain JSON values and `decode` turns JSON back into
the dataclass, refusing anything the type does not allow (a missing field, an unknown key, a string
where a dict belongs, a kind that does not exist) with the path of the bad value, so a corrupt file is
named and explained instead of surfacing as a `KeyError` three modules later.

Supported field types: str, int, float, bool, None unions (`X | None`), `list[X]`, `tuple[X, ...]`,
`dict[str, X]`, `Any` (JSON as is), `StrEnum` subclasses and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from functools import lru_cache
from typing import Any, TypeVar, get_args, get_origin

T = TypeVar("T")


class SchemaError(ValueError):
    """A value does not have the shape its record requires; `str(err)` names where and why."""


def encode(value: Any) -> Any:
    """A record (or a container of records) as JSON-ready values; enums become their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def decode(cls: type[T], data: Any, where: str = "") -> T:
    """`data` as an instance of the dataclass `cls`, or a `SchemaError` naming the bad value."""
    return _decode(cls, data, where or cls.__name__)


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise SchemaError(f"{where}: missing (null) where a value is required")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, value, where)
            except SchemaError as err:
                errors.append(str(err))
        raise SchemaError(errors[0] if len(errors) == 1 else f"{where}: {_kind(value)} fits none of its types")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {_kind(value)}")
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise SchemaError(f"{where}: unknown field(s) {', '.join(unknown)}")
        hints = _hints(tp)
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = _decode(hints[name], value[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where}: missing field '{name}'")
        try:
            return tp(**kwargs)
        except (TypeError, ValueError) as err:
            raise SchemaError(f"{where}: {err}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in tp)
            raise SchemaError(f"{where}: {value!r} is not one of {allowed}") from None
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list, got {_kind(value)}")
        item = get_args(tp)[0] if get_args(tp) else Any
        items = [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {_kind(value)}")
        item = get_args(tp)[1]
        return {str(k): _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: expected true or false, got {_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{where}: expected an integer, got {_kind(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SchemaError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SchemaError(f"{where}: expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"codec: unsupported type {tp!r} at {where}")  # a bug in schema.py, not in the data
