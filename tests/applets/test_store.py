from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.errors import PowerLoss
from applets.store import Store


def test_pending_writes_are_visible_then_committed_or_dropped():
    store = Store({"a": b"1"})
    store.put("a", b"2")
    store.put("b", b"3")
    assert store.get("a") == b"2" and store.keys() == ["a", "b"]
    store.abort()
    assert store.snapshot() == {"a": b"1"}
    store.put("a", b"2")
    store.delete("a")
    store.put("b", b"3")
    store.commit()
    assert store.snapshot() == {"b": b"3"}


def test_journal_keys_are_reserved():
    with pytest.raises(ValueError, match="reserved"):
        Store().put("~journal", b"")


def test_commit_writes_journal_mark_values_and_clears_mark():
    store = Store()
    store.put("a", b"1")
    store.put("b", b"2")
    store.commit()
    # two journal entries, the mark, two homes, clearing the mark
    assert store.writes == 6


@given(st.dictionaries(st.sampled_from("abcdef"), st.one_of(st.none(), st.binary(max_size=4)),
                       min_size=1),
       st.data())
def test_a_tear_at_any_write_leaves_all_or_nothing(changes, data):
    before = {"a": b"old", "c": b"keep"}
    after = dict(before)
    for key, value in changes.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    store = Store(before)
    for key, value in changes.items():
        store.delete(key) if value is None else store.put(key, value)
    store.tear_after = data.draw(st.integers(0, 2 * len(changes) + 1))
    with contextlib.suppress(PowerLoss):
        store.commit()
    store.tear_after = None
    store.recover()
    assert store.snapshot() in (before, after)
