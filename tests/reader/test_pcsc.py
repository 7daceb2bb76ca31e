"""What the PC/SC transport reads without the card's help (no pcscd needed)."""

from __future__ import annotations

import pytest

from reader.pcsc import contactless_historical
from wallet import contactless


@pytest.mark.parametrize("historical", [b"", b"KOALA", bytes(range(15))])
def test_the_historical_bytes_of_a_contactless_atr_are_the_atss(historical):
    assert contactless_historical(contactless.atr(historical)) == historical


@pytest.mark.parametrize("atr", ["3B8F8001", "3B0280014B4F", "3BE000008131FE45", "3B8180014B"])
def test_any_other_atr_has_none(atr):
    assert contactless_historical(bytes.fromhex(atr)) is None
