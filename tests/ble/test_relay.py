"""The relay's two ends without a radio: pairing, sessions and batches through a lossy link."""

from __future__ import annotations

import random

import pytest

from applets.gp.domain import ISD_AID
from ble import secure
from ble.framing import ResendRequest
from ble.relay import EXPRESS, LOCK, UNLOCK, RelayError
from ble.spec import payload_size
from issuer import gp
from issuer.products import TRANSIT
from phone.ble.channel import PhoneEnd
from reader import pboc
from tests.conftest import make_band, seeded
from wallet.ble.service import BandEnd

PHONE_ID, BAND_ID = bytes.fromhex("0A0B0C0D0E0F"), bytes.fromhex("B0B1B2B3B4B5")


class Link:
    """Write Requests always arrive (ATT acknowledges them); Write Commands and notifications
    get lost, and notifications reordered. The phone writes as its channel does: every
    fragment but the last as a Write Command."""

    def __init__(self, band: BandEnd, loss: float, seed: int = 1) -> None:
        self.band, self.loss, self.chance = band, loss, random.Random(seed)
        self.lost_commands = 0

    def exchange(self, phone: PhoneEnd, values: list[bytes]) -> bytes | None:
        notified = self.write(values)
        for _ in range(20):
            delivered = [v for v in notified if self.chance.random() >= self.loss]
            self.chance.shuffle(delivered)
            notified = []
            for value in delivered:
                heard = phone.on_notify(value)
                if heard.message is not None:
                    return heard.message
                notified += self.write(list(heard.again))  # the band asked for what it lacks
            if not notified:  # the phone's timeout: its last fragment again, and "resend"
                notified = [out for value in (phone.sender.last[-1], phone.receiver.resend_request())
                            for out in self.band.on_write(value)]
        return None

    def write(self, values: list[bytes]) -> list[bytes]:
        """What the band notifies for ``values``: Write Commands but the last, lost by chance."""
        notified = []
        for i, value in enumerate(values):
            if i < len(values) - 1 and self.chance.random() < self.loss:
                self.lost_commands += 1
                continue
            notified += self.band.on_write(value)
        return notified


def paired(loss: float = 0.0, mtu: int = 23):
    band = make_band(TRANSIT)
    bonds: dict[bytes, bytes] = {}
    shown: list[str] = []
    end = BandEnd(band, BAND_ID, bonds, seeded(2), payload_size(mtu), shown.append)
    phone = PhoneEnd(PHONE_ID, seeded(3), payload_size(mtu))
    link = Link(end, loss)
    pairing = secure.PhonePairing(PHONE_ID, seeded(4))
    random_a = pairing.receive(link.exchange(phone, phone.send(pairing.start())) or b"")
    assert pairing.receive(link.exchange(phone, phone.send(random_a or b"")) or b"") is None
    assert shown == [pairing.code], "the band shows the code the phone asks its user about"
    pairing.receive(link.exchange(phone, phone.send(pairing.confirm(True))) or b"")
    return band, bonds, end, phone, link, pairing.bond[1]


def hello(phone: PhoneEnd, link: Link, ltk: bytes) -> None:
    message, nonce = secure.phone_hello(PHONE_ID, seeded(7))
    ack = link.exchange(phone, phone.send(message))
    phone.session = secure.phone_session(ack or b"", ltk, nonce)


def test_a_paired_phone_runs_batches_on_the_band_through_a_lossy_link():
    band, bonds, _, phone, link, ltk = paired(loss=0.3, mtu=23)
    assert PHONE_ID in bonds
    hello(phone, link, ltk)
    phone.open_reset(link.exchange(phone, phone.seal_reset()) or b"")
    answers = phone.open_answers(link.exchange(phone, phone.seal_batch(
        [pboc.select(TRANSIT.aid).encode(), pboc.get_balance().encode()])) or b"")
    assert [a[-2:] for a in answers] == [b"\x90\x00", b"\x90\x00"]
    assert int.from_bytes(answers[1][:4]) == band.card("transit").balance
    assert link.lost_commands > 0, "some Write Commands were lost, and the band asked again"


def test_the_band_asks_for_the_fragments_its_last_one_finds_missing():
    _, _, end, phone, link, ltk = paired(mtu=23)
    hello(phone, link, ltk)
    values = phone.seal_batch([pboc.select(TRANSIT.aid).encode(), pboc.get_balance().encode()])
    assert len(values) == 3
    for value in values[2:]:  # fragments 0 and 1, Write Commands, were lost
        asked = end.on_write(value)
    assert asked == [ResendRequest(phone.sender.number, (0, 1)).encode()]
    heard = phone.on_notify(asked[0])
    assert heard.message is None and heard.again == tuple(values[:2])
    assert end.on_write(heard.again[0]) == []
    answer = end.on_write(heard.again[1])  # the batch is whole: the band runs it and answers
    message = [phone.on_notify(value).message for value in answer][-1]
    assert [a[-2:] for a in phone.open_answers(message or b"")] == [b"\x90\x00", b"\x90\x00"]


def test_an_unpaired_or_revoked_phone_gets_nothing_but_silence():
    band, bonds, _, phone, _, _ = paired()

    def connect() -> tuple[BandEnd, Link]:  # each connection has its own end on the band
        end = BandEnd(band, BAND_ID, bonds, seeded(11), payload_size(23))
        return end, Link(end, 0.0)

    stranger = PhoneEnd(bytes(6), seeded(9), payload_size(23))
    end, link = connect()
    message, _ = secure.phone_hello(bytes(6), seeded(9))
    assert link.exchange(stranger, stranger.send(message)) is None
    secure.revoke(bonds, PHONE_ID)
    end, link = connect()
    message, _ = secure.phone_hello(PHONE_ID, seeded(10))
    assert link.exchange(phone, phone.send(message)) is None
    assert end.session is None


def test_the_card_refuses_what_the_issuer_did_not_protect():
    """A paired phone relays anything, and the card still takes no unprotected change."""
    _, _, _, phone, link, ltk = paired()
    hello(phone, link, ltk)
    delete = gp.delete(TRANSIT.aid).encode()
    answers = phone.open_answers(link.exchange(phone, phone.seal_batch(
        [pboc.select(ISD_AID).encode(), delete])) or b"")
    assert answers[-1][-2:] == b"\x69\x82", "DELETE outside a secure channel"


def test_the_phone_locks_unlocks_and_chooses_the_express_card():
    band, _, _, phone, link, ltk = paired()
    hello(phone, link, ltk)

    def control(kind: int, data: bytes = b"") -> tuple[bool, bool]:
        state: tuple[bool, bool] = phone.open_state(
            link.exchange(phone, phone.seal_control(kind, data)) or b"")
        return state

    assert control(LOCK) == (True, True) and band.locked
    assert control(UNLOCK) == (False, True) and not band.locked
    assert control(EXPRESS, TRANSIT.aid) == (False, True) and band.express() == TRANSIT.aid
    with pytest.raises(RelayError, match="only a transit or canteen card"):
        control(EXPRESS, bytes(8))
    band.wrist(False)
    with pytest.raises(RelayError, match="put the band on"):
        control(UNLOCK)
