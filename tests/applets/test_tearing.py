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


# -- the holder PIN's try counter ----------------------------------------------------------

WRONG_PIN, RIGHT_PIN, ASK = (bytes.fromhex(h) for h in ("0020000003111111", "0020000003123456",
                                                        "0020000000"))


def _pin_band() -> Band:
    band = make_band(TRANSIT, CANTEEN)
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    return band


def _torn(command: bytes, k: int) -> Band:
    """A band whose power is cut before physical write ``k`` of ``command``, powered up again
    with the purse selected."""
    band = _pin_band()
    band.se.store.writes, band.se.store.tear_after = 0, k
    with pytest.raises(PowerLoss):
        band.transmit(command)
    band.se.store.tear_after = None
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    return band


def _writes(command: bytes) -> tuple[int, bytes]:
    band = _pin_band()
    band.se.store.writes = 0
    answer = band.transmit(command)
    return band.se.store.writes, answer[-2:]


def _tries(band: Band) -> int:
    sw = int.from_bytes(band.transmit(ASK)[-2:])
    assert sw & 0xFFF0 == 0x63C0, f"{sw:04X}"
    return sw & 0x0F


def test_a_wrong_pin_is_counted_before_it_is_refused():
    total, sw = _writes(WRONG_PIN)
    assert sw == b"\x63\xc2" and total > 0
    outcomes = {_tries(_torn(WRONG_PIN, k)) for k in range(total)}
    assert outcomes == {3, 2}, "a tear leaves the count before or after, and both happen"
    # and the refusal itself is only ever seen with the count already down
    band = _pin_band()
    assert band.transmit(WRONG_PIN)[-2:] == b"\x63\xc2"
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    assert _tries(band) == 2


def test_a_tear_cannot_tell_a_right_pin_from_a_wrong_one():
    """Until the count is down the card has not compared: a right and a wrong PIN cut at the
    same write leave the same memory, so cutting power where a refusal would be written
    learns nothing and costs the try anyway."""
    wrong, _ = _writes(WRONG_PIN)
    right, sw = _writes(RIGHT_PIN)
    assert sw == b"\x90\x00" and right > wrong, "a right PIN writes the count back after"
    for k in range(wrong):
        assert (_torn(RIGHT_PIN, k).se.store.snapshot()
                == _torn(WRONG_PIN, k).se.store.snapshot()), f"tear before write {k + 1}"
    for k in range(right):
        assert _tries(_torn(RIGHT_PIN, k)) in (3, 2), "a right PIN never adds a try"


def test_a_torn_change_pin_leaves_the_old_pin_or_the_new_one():
    change = pboc.change_pin("123456", "2468").encode()
    total, sw = _writes(change)
    assert sw == b"\x90\x00"
    seen = set()
    for k in range(total):
        band = _torn(change, k)
        tries = _tries(band)
        old = band.transmit(RIGHT_PIN)[-2:] == b"\x90\x00"
        send(band, pboc.select(TRANSIT.aid))
        new = band.transmit(pboc.verify_pin("2468").encode())[-2:] == b"\x90\x00"
        assert old != new, f"tear before write {k + 1}: exactly one PIN works"
        seen.add((tries, "new" if new else "old"))
    assert ("new" in {pin for _, pin in seen}) and ("old" in {pin for _, pin in seen})
    assert all(tries in (3, 2) for tries, _ in seen)
