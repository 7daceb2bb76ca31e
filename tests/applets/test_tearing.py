"""Power cut at every persistent write of load, purchase and compound purchase.

For each command the untorn run gives the state after it; a run torn before
its k-th physical write must, after power-up, equal the state before the
command or the state after it, cell for cell. Exact equality of the whole
memory implies that balance, counters, log and transit record agree.
"""

from __future__ import annotations

import pytest

from applets.errors import PowerLoss
from applets.pboc.layouts import DebitCommand
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from tests.conftest import make_band, tear_at_every_write
from tests.support.purse import DATE, TIME, load, purchase, send
from wallet.band import Band


def _prepared(kind: str):
    """A band with a purse session open, and the command that finishes it."""
    band = make_band(TRANSIT, CANTEEN)
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    load(band, 2000)
    held = _HoldFinal(band)
    if kind == "load":
        load(held, 500)
    elif kind == "purchase":
        purchase(held, 700)
    else:
        purchase(held, 350, capp=bytes((0x01, 46)) + b"\x02" + bytes(45))
    assert held.final is not None
    return band, held.final


class _HoldFinal:
    """Passes commands to the band but keeps back the final CREDIT / DEBIT."""

    def __init__(self, band: Band) -> None:
        self.band = band
        self.final: bytes | None = None

    def transmit(self, raw: bytes) -> bytes:
        if raw[1] in (0x52, 0x54):
            self.final = raw
            return b"\x90\x00"
        return self.band.transmit(raw)


@pytest.mark.parametrize("kind", ["load", "purchase", "compound"])
def test_every_tear_leaves_the_old_or_the_new_card(kind):
    assert len(list(tear_at_every_write(lambda: _prepared(kind)))) >= 6, \
        "a purse transaction writes purse, log and proof, journalled"


def test_a_torn_command_never_answers(band):
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    load(band, 100)
    band.se.store.tear_after = band.se.store.writes
    with pytest.raises(PowerLoss):
        load(band, 100)


def test_after_a_tear_the_session_is_gone():
    band, final = _prepared("purchase")
    band.se.store.tear_after = band.se.store.writes  # cut at the first write
    with pytest.raises(PowerLoss):
        band.transmit(final)
    band.se.store.tear_after = None
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    again = send(band, pboc.debit_for_purchase(DebitCommand(1, DATE, TIME, bytes(4))))
    assert again.sw == 0x6985
