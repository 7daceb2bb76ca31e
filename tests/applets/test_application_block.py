"""APPLICATION BLOCK: a blacklisted purse stops under its maintenance key's MAC, at once and
for every terminal, and a power cut leaves it blocked or not, never half."""

from __future__ import annotations

import pytest

from applets.pboc import crypto
from applets.pboc.commands import application_block, application_block_header
from applets.sw import SW
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from tests.conftest import make_band, serial_for, tear_at_every_write
from tests.support.purse import send

DAMK = crypto.diversify(TRANSIT.master.maintenance, crypto.div_data(serial_for(TRANSIT)))


def _selected():
    band = make_band(TRANSIT, CANTEEN)
    band.power_on()
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK
    return band


def _block_command(band, permanent: bool = False, key: bytes = DAMK):
    challenge = send(band, pboc.get_challenge(4)).data
    mac = crypto.maintenance_mac(key, challenge, application_block_header(permanent))
    return application_block(mac, permanent)


def test_a_blocked_purse_refuses_selection_until_its_issuer_unblocks_it():
    band = _selected()
    assert send(band, _block_command(band)).sw == SW.OK
    band.power_on()
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.FUNCTION_NOT_SUPPORTED
    assert send(band, pboc.select(CANTEEN.aid)).sw == SW.OK, "the band's other cards still work"


def test_a_permanent_block_answers_9303():
    band = _selected()
    assert send(band, _block_command(band, permanent=True)).sw == SW.OK
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.APPLICATION_PERMANENTLY_LOCKED


def test_a_wrong_mac_blocks_nothing_and_costs_a_try():
    band = _selected()
    wrong = crypto.diversify(CANTEEN.master.maintenance, crypto.div_data(serial_for(TRANSIT)))
    assert send(band, _block_command(band, key=wrong)).sw == SW.MAC_INVALID
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK
    for _ in range(2):
        send(band, _block_command(band, key=wrong))
    assert send(band, _block_command(band)).sw == SW.AUTHENTICATION_METHOD_BLOCKED


def test_a_block_needs_the_challenge_just_before_it():
    band = _selected()
    command = _block_command(band)
    send(band, pboc.get_balance())  # spends the challenge
    assert send(band, command).sw == SW.CONDITIONS_NOT_SATISFIED
    replayed = _block_command(band)
    assert send(band, replayed).sw == SW.OK
    band.power_on()
    band2 = _selected()
    assert send(band2, replayed).sw == SW.CONDITIONS_NOT_SATISFIED, "a recorded block replays to nothing"


def _prepared():
    band = _selected()
    return band, _block_command(band).encode()


def test_every_tear_of_a_block_leaves_the_purse_blocked_or_not():
    outcomes = dict(tear_at_every_write(_prepared))
    band = outcomes["before"]
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK
    assert send(outcomes["after"], pboc.select(TRANSIT.aid)).sw == SW.FUNCTION_NOT_SUPPORTED


@pytest.mark.parametrize("p1p2", [(0x01, 0x00), (0x00, 0x02)])
def test_other_p1_p2_are_refused(p1p2):
    band = _selected()
    command = _block_command(band)
    raw = bytearray(command.encode())
    raw[2:4] = bytes(p1p2)
    assert send(band, bytes(raw).hex()).sw == SW.INCORRECT_P1_P2
