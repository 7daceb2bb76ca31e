"""Status words as messages name them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from applets.sw import describe


def test_a_status_word_is_named_as_the_standards_name_it():
    assert describe(0x6A88) == "6A88 (referenced data not found)"
    assert describe(0x63C2) == "63C2 (verification failed, 2 tries left)"
    assert describe(0x6110) == "6110 (16 more bytes)"
    assert describe(0x6C05) == "6C05 (wrong Le: 5 bytes)"
    assert describe(0x6310) == "6310 (more data available)"
    assert describe(0x6B01) == "6B01"


@given(st.integers(0, 0xFFFF))
def test_every_status_word_starts_with_its_hex(sw):
    assert describe(sw).startswith(f"{sw:04X}")
