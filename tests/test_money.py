"""Money as text: one format, the sign before the symbol."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from common.money import yuan


def test_the_sign_comes_before_the_symbol():
    assert [yuan(1250), yuan(-200), yuan(0), yuan(-5), yuan(4294967295)] == [
        "¥12.50", "-¥2.00", "¥0.00", "-¥0.05", "¥42,949,672.95"]


@given(st.integers(-10**15, 10**15))
def test_every_amount_reads_back_to_its_fen(fen):
    text = yuan(fen)
    assert text.count("¥") == 1 and not text.startswith("¥-")
    assert Decimal(text.replace("¥", "").replace(",", "")).scaleb(2) == fen
