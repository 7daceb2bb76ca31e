"""Hypothesis strategies for the clearing records (:mod:`reader.record`), drawn from the bounds
the records declare, so a test of the records or of the API's bodies covers every field."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from reader.record import Hex, Int, Record, Tags, Text, spec


def bounded(bound: Any) -> st.SearchStrategy[Any]:
    """Any value within ``bound``."""
    if isinstance(bound, Hex):
        return st.binary(min_size=bound.size or 0, max_size=bound.size or bound.max_size)
    if isinstance(bound, Int):
        return st.integers(bound.low, bound.high)
    if isinstance(bound, Text):
        return st.from_regex(bound.pattern, fullmatch=True) if bound.pattern else \
            st.text(max_size=bound.max_length or 40)
    if isinstance(bound, Tags):
        return st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=bound.max_size),
                               max_size=bound.max_items)
    raise TypeError(f"no strategy for {bound!r}")


def records(kind: type[Record]) -> st.SearchStrategy[Any]:
    """Records of ``kind`` with every field anywhere within its bound."""
    return st.builds(kind, **{field.name: bounded(field.bound) for field in spec(kind)})
