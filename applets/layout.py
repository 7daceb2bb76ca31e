"""Binary layouts declared once with construct, read and written as dataclasses.

A :class:`Layout` ties a construct ``Struct`` to a frozen dataclass with the
same field names, so that the card builds a record and the reader parses it
through one declaration, and typed code never handles construct containers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Generic, TypeVar

import construct

T = TypeVar("T")


class LayoutError(ValueError):
    """Bytes that do not fit a layout."""


class Layout(Generic[T]):
    def __init__(self, struct: construct.Construct, cls: type[T]) -> None:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        declared = [sc.name for sc in struct.subcons if sc.name and not sc.name.startswith("_")]
        if names != declared:
            raise TypeError(f"{cls.__name__} fields {names} differ from the layout {declared}")
        self._names = names
        self._cls = cls
        self._struct = struct
        self.size: int = struct.sizeof()

    @functools.cached_property
    def _compiled(self) -> construct.Compiled:
        """Compiled on first use: compiling writes and runs Python, which costs every process
        that imports a layout (all the card's, for a tap) a few milliseconds each."""
        return self._struct.compile()

    def parse(self, data: bytes) -> T:
        if len(data) != self.size:
            raise LayoutError(f"{self._cls.__name__} has {self.size} bytes, got {len(data)}")
        try:
            parsed = self._compiled.parse(data)
        except construct.ConstructError as exc:
            raise LayoutError(f"{self._cls.__name__}: {exc}") from exc
        return self._cls(**{name: parsed[name] for name in self._names})

    def build(self, obj: T) -> bytes:
        values: dict[str, Any] = {name: getattr(obj, name) for name in self._names}
        try:
            return bytes(self._compiled.build(values))
        except construct.ConstructError as exc:
            raise LayoutError(f"{self._cls.__name__}: {exc}") from exc
