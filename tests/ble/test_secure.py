"""The app layer above GATT: the toolbox against the Bluetooth specification's sample data,
pairing with numeric comparison, sealed frames, and fragments through a lossy link."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from ble import secure, toolbox
from ble.framing import FramingError, Reassembler, ResendRequest, Sender, fragment
from ble.spec import payload_size
from tests import vectors
from tests.conftest import seeded

H = bytes.fromhex
SMP = vectors.load("bt_smp")


@pytest.mark.parametrize("v", SMP, ids=vectors.ids(SMP))
def test_the_toolbox_gives_the_specifications_sample_values(v):
    if v["function"] == "f4":
        assert toolbox.f4(H(v["u"]), H(v["v"]), H(v["x"]), H(v["z"])) == H(v["expected"])
    elif v["function"] == "f5":
        assert toolbox.f5(H(v["w"]), H(v["n1"]), H(v["n2"]), H(v["a1"]), H(v["a2"])) == (
            H(v["mac_key"]), H(v["ltk"]))
    elif v["function"] == "f6":
        assert toolbox.f6(H(v["w"]), H(v["n1"]), H(v["n2"]), H(v["r"]), H(v["io_cap"]),
                          H(v["a1"]), H(v["a2"])) == H(v["expected"])
    elif v["function"] == "g2":
        value = toolbox.g2(H(v["u"]), H(v["v"]), H(v["x"]), H(v["y"]))
        assert value == int(v["expected"], 16)
        assert toolbox.code(value) == f"{int(v['expected'], 16) % 1_000_000:06d}"
    else:
        key = ec.derive_private_key(int(v["private_a"], 16), ec.SECP256R1())
        assert secure.dhkey(key, H(v["public_b_x"]) + H(v["public_b_y"])) == H(v["expected"])


PHONE_ID, BAND_ID = bytes.fromhex("A1A2A3A4A5A6"), bytes.fromhex("B1B2B3B4B5B6")


def test_numeric_comparison_pairing_binds_the_phone_and_the_band():
    phone = secure.PhonePairing(PHONE_ID, seeded(1))
    band = secure.BandPairing(BAND_ID, seeded(2))
    random_a = phone.receive(band.receive(phone.start()))
    assert random_a is not None
    assert phone.receive(band.receive(random_a)) is None  # the user compares the codes now
    assert phone.code == band.code and len(phone.code or "") == 6
    phone.receive(band.receive(phone.confirm(True)))
    assert phone.bond == (BAND_ID, band.bond[1]) and band.bond == (PHONE_ID, phone.bond[1])


def test_when_the_user_sees_other_digits_nothing_is_bonded():
    phone = secure.PhonePairing(PHONE_ID, seeded(1))
    band = secure.BandPairing(BAND_ID, seeded(2))
    phone.receive(band.receive(phone.receive(band.receive(phone.start())) or b""))
    with pytest.raises(secure.PairingFailed, match="codes differ"):
        phone.confirm(False)
    with pytest.raises(secure.PairingFailed):
        _ = phone.bond
    with pytest.raises(secure.PairingFailed):
        _ = band.bond


def test_a_man_in_the_middle_shows_two_different_codes():
    """An attacker who pairs with each side shows each a code of its own making."""
    phone = secure.PhonePairing(PHONE_ID, seeded(1))
    band = secure.BandPairing(BAND_ID, seeded(2))
    to_band = secure.PhonePairing(PHONE_ID, seeded(3))  # the attacker, as a phone
    to_phone = secure.BandPairing(BAND_ID, seeded(4))  # the attacker, as a band
    phone.receive(to_phone.receive(phone.receive(to_phone.receive(phone.start())) or b""))
    to_band.receive(band.receive(to_band.receive(band.receive(to_band.start())) or b""))
    assert phone.code != band.code


def test_an_altered_check_fails_the_pairing():
    phone = secure.PhonePairing(PHONE_ID, seeded(1))
    band = secure.BandPairing(BAND_ID, seeded(2))
    phone.receive(band.receive(phone.receive(band.receive(phone.start())) or b""))
    check = bytearray(phone.confirm(True))
    check[-1] ^= 1
    with pytest.raises(secure.PairingFailed, match="DHKey check"):
        band.receive(bytes(check))


def paired_sessions() -> tuple[secure.Session, secure.Session, dict[bytes, bytes]]:
    phone = secure.PhonePairing(PHONE_ID, seeded(1))
    band = secure.BandPairing(BAND_ID, seeded(2))
    phone.receive(band.receive(phone.receive(band.receive(phone.start())) or b""))
    phone.receive(band.receive(phone.confirm(True)))
    bonds = dict([band.bond])
    hello, nonce = secure.phone_hello(PHONE_ID, seeded(5))
    ack, band_session = secure.band_accept(hello, bonds, seeded(6))
    return secure.phone_session(ack, phone.bond[1], nonce), band_session, bonds


def test_sealed_frames_flow_both_ways_and_a_replay_or_reorder_is_refused():
    phone, band = paired_sessions()[:2]
    first, second = phone.seal(b"00A4040008A000000632010105"), phone.seal(b"80CA9F7900")
    assert band.open(first) == b"00A4040008A000000632010105"
    with pytest.raises(secure.FrameRejected, match="replayed"):
        band.open(first)
    assert band.open(second) == b"80CA9F7900"
    assert phone.open(band.seal(b"9000")) == b"9000"
    third, fourth = phone.seal(b"3"), phone.seal(b"4")
    assert band.open(fourth) == b"4"
    with pytest.raises(secure.FrameRejected, match="reordered"):
        band.open(third)


@given(position=st.integers(0, 40), flip=st.integers(1, 255))
def test_any_altered_byte_is_refused(position, flip):
    phone, band = paired_sessions()[:2]
    frame = bytearray(phone.seal(b"80500102 0B 01 00000064 000000000001"))
    frame[position % len(frame)] ^= flip
    with pytest.raises(secure.FrameRejected):
        band.open(bytes(frame))


def test_a_frame_does_not_open_in_the_other_direction_or_another_session():
    phone = paired_sessions()[0]
    other_band = paired_sessions()[1]
    frame = phone.seal(b"data")
    with pytest.raises(secure.FrameRejected):
        phone.open(frame)  # reflected back to its sender
    with pytest.raises(secure.FrameRejected):
        other_band.open(frame)  # another connection's keys


def test_a_revoked_or_unknown_phone_gets_no_session():
    _, _, bonds = paired_sessions()
    hello, _ = secure.phone_hello(PHONE_ID, seeded(9))
    secure.revoke(bonds, PHONE_ID)
    with pytest.raises(secure.FrameRejected, match="not paired"):
        secure.band_accept(hello, bonds, seeded(1))


@given(message=st.binary(max_size=1500), mtu=st.integers(23, 517), seed=st.integers(0, 2**32))
def test_fragments_through_a_lossy_reordering_link_arrive_whole_once(message, mtu, seed):
    sender, receiver = Sender(payload_size(mtu)), Reassembler()
    pieces = sender.fragments(message)
    assert all(len(piece) <= payload_size(mtu) for piece in pieces)
    chance = random.Random(seed)
    delivered = [piece for piece in pieces if chance.random() > 0.3]  # some lost
    delivered += chance.sample(delivered, k=len(delivered) // 3)  # some twice
    chance.shuffle(delivered)
    out = [whole for piece in delivered if (whole := receiver.receive(piece)) is not None]
    while not out:
        request = receiver.resend_request()
        out = [whole for piece in sender.resend(request)
               if (whole := receiver.receive(piece)) is not None]
    assert out == [message]
    assert all(receiver.receive(piece) is None for piece in pieces), "delivered once only"


def test_a_last_fragment_that_finds_others_missing_asks_for_them_and_nothing_else_does():
    """The band's rule for the phone's Write Commands: ask when the Write Request (the last
    fragment) comes and some before it did not."""
    sender, receiver = Sender(payload_size(23)), Reassembler()
    message = bytes(range(60))
    values = sender.fragments(message)
    assert len(values) == 4
    assert receiver.receive(values[1]) is None and receiver.missing(values[1]) is None
    assert receiver.receive(values[3]) is None
    asked = receiver.missing(values[3])
    assert asked == ResendRequest(sender.number, (0, 2)).encode()
    again = sender.resend(asked or b"")
    assert again == [values[0], values[2]]
    assert receiver.receive(again[0]) is None and receiver.receive(again[1]) == message
    assert receiver.receive(values[3]) is None and receiver.missing(values[3]) is None


def test_malformed_fragments_are_refused():
    receiver = Reassembler()
    with pytest.raises(FramingError):
        receiver.receive(b"\x01\x00")
    receiver.receive(b"\x01\x80\x01data")  # the last of 2
    with pytest.raises(FramingError, match="of a message of 2"):
        receiver.receive(b"\x01\x00\x05data")  # index 5 of 2
    receiver.receive(fragment(b"x" * 50, 7, 20)[0])
    receiver.receive(b"\x07\x80\x03data")
    with pytest.raises(FramingError, match="disagree"):
        receiver.receive(b"\x07\x80\x08data")
