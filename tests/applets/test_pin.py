"""The purse's holder PIN (VERIFY, CHANGE PIN) and GET CHALLENGE, on the sans-I/O card."""

from __future__ import annotations

from dataclasses import replace

import pytest

from applets.errors import CardError
from applets.pboc import perso
from applets.sw import SW
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from tests.conftest import EXPIRY, START, make_band, serial_for
from tests.support.purse import load, purchase, send
from wallet.band import Band

WRONG = "0020000003111111"
RIGHT = "0020000003123456"  # the default PIN, 123456
ASK = "0020000000"  # VERIFY with no PIN: the tries left


@pytest.fixture
def transit(band):
    band.power_on()
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK
    return band


def reselect(band: Band) -> None:
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK


def test_the_default_pin_verifies_and_asking_after_says_so(transit):
    assert send(transit, ASK).sw == 0x63C3
    assert send(transit, "00200000").sw == 0x63C3  # case 1, no Le
    assert send(transit, RIGHT).sw == SW.OK
    assert send(transit, ASK).sw == SW.OK  # verified in this selection
    reselect(transit)
    assert send(transit, ASK).sw == 0x63C3  # a new selection verifies again


def test_wrong_pins_count_down_then_block_even_the_right_one(transit):
    assert [send(transit, WRONG).sw for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert send(transit, RIGHT).sw == SW.AUTHENTICATION_METHOD_BLOCKED
    assert send(transit, ASK).sw == SW.AUTHENTICATION_METHOD_BLOCKED


def test_the_right_pin_gives_the_tries_back(transit):
    assert send(transit, WRONG).sw == 0x63C2
    assert send(transit, WRONG).sw == 0x63C1
    assert send(transit, RIGHT).sw == SW.OK
    reselect(transit)
    assert send(transit, ASK).sw == 0x63C3


def test_the_count_survives_power_off(transit):
    assert send(transit, WRONG).sw == 0x63C2
    transit.power_on()
    reselect(transit)
    assert send(transit, ASK).sw == 0x63C2


@pytest.mark.parametrize(("raw", "sw"), [
    ("002000000112", SW.WRONG_LENGTH),  # one byte: no PIN
    ("0020000007" + "12" * 7, SW.WRONG_LENGTH),  # 14 digits
    ("0020000003ABCDEF", SW.WRONG_DATA),
    ("00200000031234FF", SW.WRONG_DATA),  # padding beyond a whole byte
    ("0020008003123456", SW.INCORRECT_P1_P2),  # a reference this card does not have
    ("0020010003123456", SW.INCORRECT_P1_P2),
])
def test_what_is_no_pin_is_refused_without_counting(transit, raw, sw):
    assert send(transit, raw).sw == sw
    assert send(transit, ASK).sw == 0x63C3


def test_a_gate_never_needs_the_pin_even_blocked(transit):
    for _ in range(3):
        send(transit, WRONG)
    assert send(transit, ASK).sw == SW.AUTHENTICATION_METHOD_BLOCKED
    assert load(transit, 1000).sw == SW.OK
    reselect(transit)
    assert purchase(transit, 300)[0].sw == SW.OK
    assert purchase(transit, 200, capp=bytes((0x01, 46)) + b"\x01" + bytes(45))[0].sw == SW.OK
    assert int.from_bytes(send(transit, pboc.get_balance()).data) == 500


def test_change_pin_needs_the_current_one(transit):
    assert send(transit, pboc.change_pin("111111", "2468")).sw == 0x63C2
    assert send(transit, pboc.change_pin("123456", "2468")).sw == SW.OK
    assert send(transit, pboc.verify_pin("123456")).sw == 0x63C2
    assert send(transit, pboc.verify_pin("2468")).sw == SW.OK
    reselect(transit)
    assert send(transit, ASK).sw == 0x63C3


@pytest.mark.parametrize(("raw", "sw"), [
    ("805E010007123456FF2468FF", SW.WRONG_DATA),  # the new PIN padded past its byte
    ("805E000007123456FF246813", SW.INCORRECT_P1_P2),  # RELOAD PIN: the issuer's, with a MAC
    ("805E010006123456246813", SW.WRONG_DATA),  # no FF between the two
    ("805E010005123456FF24", SW.WRONG_LENGTH),  # a new PIN of 2 digits
])
def test_a_malformed_change_pin_changes_nothing(transit, raw, sw):
    assert send(transit, raw).sw == sw
    assert send(transit, RIGHT).sw == SW.OK


def test_the_pin_comes_with_the_personalisation():
    band = make_band()
    band.add_purse(replace(TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY),
                           pin="97531", pin_tries=5), TRANSIT.aid)
    band.power_on()
    reselect(band)
    assert send(band, "0020000000").sw == 0x63C5
    assert send(band, "002000000397531F").sw == SW.OK


@pytest.mark.parametrize("changes", [{"pin": "12"}, {"pin": "12a456"}, {"pin_tries": 0},
                                     {"pin_tries": 16}])
def test_a_personalisation_with_no_usable_pin_is_refused(changes):
    band = make_band()
    with pytest.raises(CardError) as refusal:
        band.add_purse(replace(TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY),
                               **changes), TRANSIT.aid)
    assert refusal.value.sw == SW.WRONG_DATA


def test_a_purse_personalised_before_it_had_a_pin_has_the_default_one(transit):
    prefix = f"app/{TRANSIT.aid.hex().upper()}/"
    for cell in ("pin", "tries/pin"):
        del transit.se.store.cells[prefix + cell]
    transit.power_on()
    reselect(transit)
    assert send(transit, ASK).sw == 0x63C3
    assert send(transit, WRONG).sw == 0x63C2
    assert send(transit, RIGHT).sw == SW.OK


def test_each_purse_keeps_its_own_pin(band):
    band.power_on()
    reselect(band)
    assert send(band, WRONG).sw == 0x63C2
    assert send(band, pboc.select(CANTEEN.aid)).sw == SW.OK
    assert send(band, ASK).sw == 0x63C3


def test_the_purse_dgis_carry_the_df_identifier_and_the_pin_and_come_back():
    data = replace(TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY), pin="24680",
                   pin_tries=5)
    dgis = dict(perso.to_dgis(data, lambda secret: secret))
    assert dgis[perso.FILE_ID] == b"\x10\x01" and dgis[perso.PIN_TRIES] == b"\x05"
    assert dgis[perso.PIN] == bytes.fromhex("24680F" + "FF" * 13)  # one DEK block, F-padded
    assert perso.from_dgis(dgis) == data


def test_a_personalisation_without_the_new_dgis_gets_no_identifier_and_the_default_pin():
    data = TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY)
    dgis = {d: v for d, v in perso.to_dgis(data, lambda secret: secret)
            if d not in (perso.FILE_ID, perso.PIN_TRIES, perso.PIN)}
    assert perso.from_dgis(dgis) == replace(data, file_id=None, pin="123456", pin_tries=3)


@pytest.mark.parametrize(("dgi", "value"), [(perso.FILE_ID, b"\x10"), (perso.PIN_TRIES, b""),
                                            (perso.PIN, bytes(8)), (perso.PIN, b"\xff" * 16)])
def test_malformed_new_dgis_are_refused(dgi, value):
    dgis = dict(perso.to_dgis(TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY),
                              lambda secret: secret))
    with pytest.raises(ValueError):
        perso.from_dgis({**dgis, dgi: value})


# -- GET CHALLENGE ---------------------------------------------------------------------------


def counting(n: int) -> bytes:
    counting.calls += 1  # type: ignore[attr-defined]
    return bytes((counting.calls,)) * n  # type: ignore[attr-defined]


counting.calls = 0  # type: ignore[attr-defined]


def test_get_challenge_gives_the_card_s_randomness():
    band = Band.from_image(make_band(TRANSIT).to_image(), rng=counting)
    band.power_on()
    reselect(band)
    first = send(band, "0084000008")
    assert first.sw == SW.OK and first.data == bytes((counting.calls,)) * 8  # type: ignore[attr-defined]
    second = send(band, "0084000004")
    assert second.sw == SW.OK and second.data == bytes((counting.calls,)) * 4  # type: ignore[attr-defined]
    assert first.data[:4] != second.data


def test_seeded_cards_give_the_same_challenges():
    challenges = []
    for _ in range(2):
        band = make_band(TRANSIT, seed=11)
        band.power_on()
        reselect(band)
        challenges.append(send(band, "0084000008").data)
    assert challenges[0] == challenges[1] and len(challenges[0]) == 8


@pytest.mark.parametrize(("raw", "sw"), [
    ("0084000010", SW.WRONG_LENGTH), ("0084000000", SW.WRONG_LENGTH), ("00840000", SW.WRONG_LENGTH),
    ("008400000101", SW.WRONG_LENGTH), ("0084000108", SW.INCORRECT_P1_P2),
    ("0084000208", SW.INCORRECT_P1_P2),
])
def test_get_challenge_refuses_other_sizes_and_p1_p2(transit, raw, sw):
    assert send(transit, raw).sw == sw
