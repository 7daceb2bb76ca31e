"""The companion over BLE: a card issued and topped up through the issuer service, on Bumble's
virtual controllers, also when the link drops at every step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ble import secure
from ble.errors import BleError, CharacteristicRefused, NotConnected
from ble.framing import HEADER
from issuer.errors import IssuerUnavailable
from phone.ble.bumble_backend.radio import VirtualBle
from phone.ble.channel import BleBand
from phone.companion import Companion, IssuerClient
from tests.conftest import seeded
from tests.support.http import registered
from wallet.band import Band

PHONE_ID = bytes.fromhex("C0FFEE000001")


class World:
    """The virtual band and phone, remembering the phone's app-layer key between connections."""

    def __init__(self, band: Band) -> None:
        self.ble = VirtualBle(band, PHONE_ID, lambda code: code == self.ble.shown[-1], seeded(1),
                              answer_timeout=0.5)
        self.band, self.bonds, self.shown = band, band.bonds, self.ble.shown
        self.ltk: bytes | None = None

    def connect(self) -> BleBand:
        link, self.ltk = self.ble.connect(self.ltk)
        return link

    def disconnect(self) -> None:
        self.ble.disconnect()

    def close(self) -> None:
        self.ble.close()


class Dropping:
    """A BandLink that loses the BLE link at round trip ``at``: before the band hears it, or
    (``after_band``) once the band has run it but before its answer reaches the phone."""

    def __init__(self, link: BleBand, world: World, at: int, after_band: bool) -> None:
        self.link, self.world, self.left, self.after_band = link, world, at, after_band

    def reset(self) -> None:
        self._trip(self.link.reset)

    def run(self, commands: list[bytes]) -> list[bytes]:
        answers: list[bytes] = []
        self._trip(lambda: answers.extend(self.link.run(commands)))
        return answers

    def _trip(self, trip: Callable[[], object]) -> None:
        if self.left:
            self.left -= 1
            trip()
            return
        if self.after_band:
            trip()
        self.world.disconnect()
        raise BleError("the band went out of range")


def leave_instead_of_answering(world: World, at: int) -> None:
    """At the band's answer number ``at`` (0 is the next), the band has run what the phone
    wrote and drops the link instead of notifying the answer: the phone hears only bleak's
    disconnect callback. (The band's write response still goes: the disconnection comes after.)"""
    peripheral = world.ble.service.peripheral
    notify, answers = peripheral.notify_relay, [-1]

    async def leave(data: bytes) -> None:
        first = HEADER.parse(data[:HEADER.size]).index == 0
        answers[0] += first
        if answers[0] != at:
            await notify(data)
        elif first:
            asyncio.get_running_loop().create_task(peripheral.disconnect())

    peripheral.notify_relay = leave  # type: ignore[method-assign]


@pytest.fixture
def world_of():
    worlds: list[World] = []

    def make(band: Band) -> World:
        worlds.append(World(band))
        return worlds[-1]

    yield make
    for world in worlds:
        world.close()


def test_a_card_is_issued_and_topped_up_over_ble(issuer_url, world_of):
    band, band_id, token, serial = registered(issuer_url)
    world = world_of(band)
    link = world.connect()
    assert world.shown and len(world.shown[0]) == 6, "the band showed the six digits"
    assert PHONE_ID in world.bonds
    phone = Companion(link, band_id, IssuerClient(issuer_url, token))
    assert phone.topup(serial, 1500)["state"] == "settled"
    issued = phone.issue("canteen")
    assert issued["state"] == "settled"
    cards = {c["product"]: c for c in IssuerClient(issuer_url, token).cards(band_id)}
    assert band.balances() == {"transit": 1500, "canteen": 0}
    assert cards["transit"]["balance"] == 1500 and cards["canteen"]["status"] == "active"


@pytest.mark.parametrize("after_band", [False, True], ids=["before-band", "after-band"])
@pytest.mark.parametrize("at", range(3))  # the reset, SELECT + INITIALIZE, CREDIT
def test_a_top_up_broken_by_the_link_at_any_step_ends_at_the_next_connection(
        issuer_url, world_of, at, after_band):
    band, band_id, token, serial = registered(issuer_url)
    world = world_of(band)
    client = IssuerClient(issuer_url, token)
    flaky = Companion(Dropping(world.connect(), world, at, after_band), band_id, client)
    with pytest.raises((BleError, IssuerUnavailable)):
        flaky.topup(serial, 700, key=f"ble-drop-{at}-{after_band}")
    phone = Companion(world.connect(), band_id, client)
    waiting = phone.sync()
    assert [order["state"] for order in waiting] in ([], ["settled"])
    assert band.balances()["transit"] == 700
    assert client.cards(band_id)[0]["balance"] == 700


def test_a_revoked_phone_can_no_longer_relay_nor_read_the_cards(issuer_url, world_of):
    band = registered(issuer_url)[0]
    world = world_of(band)
    world.connect()
    assert [c["card"] for c in world.ble.cards()] == ["transit"]
    world.disconnect()
    secure.revoke(world.bonds, PHONE_ID)
    with pytest.raises(BleError, match="stopped answering"):
        world.connect()
    with pytest.raises(CharacteristicRefused, match="INSUFFICIENT_AUTHORIZATION"):
        world.ble.cards()  # the link is encrypted, yet the band does not know this phone


@pytest.mark.parametrize("at", [*range(0, 17, 2), 17])  # 18 trips: the reset, 17 APDUs
def test_an_issuance_broken_by_the_link_ends_at_the_next_connection(issuer_url, world_of,
                                                                    at):
    """The link drops once the band has run the step's batch and before its answer reaches
    the phone (the harder case: the card changed and the issuer does not know)."""
    band, band_id, token, _ = registered(issuer_url)
    world = world_of(band)
    client = IssuerClient(issuer_url, token)
    flaky = Companion(Dropping(world.connect(), world, at, after_band=True), band_id, client)
    with pytest.raises((BleError, IssuerUnavailable)):
        flaky.issue("canteen", key=f"ble-issue-{at}")
    phone = Companion(world.connect(), band_id, client)
    phone.sync()  # the next contact relays what the issuer has waiting
    books = {c["product"]: c for c in client.cards(band_id)}
    assert books["canteen"]["status"] == "active"
    assert band.balances()["canteen"] == books["canteen"]["balance"] == 0
    assert phone.topup(bytes.fromhex(books["canteen"]["app_serial"]), 300)["state"] == "settled"
    assert band.balances()["canteen"] == 300


@pytest.mark.parametrize("at", range(3))  # the reset, SELECT + INITIALIZE, CREDIT
def test_the_band_leaving_mid_step_ends_the_top_up_as_a_dropped_link_does(issuer_url, world_of, at):
    """The band runs a step and leaves before answering: bleak's disconnect callback ends the
    phone's wait (not a timeout), and the order stands as when the link drops after the band
    ran the step (:class:`Dropping`), and ends alike at the next connection."""
    ended = []
    for band_leaves in (True, False):
        band, band_id, token, serial = registered(issuer_url)
        world = world_of(band)
        client = IssuerClient(issuer_url, token)
        link = world.connect()
        if band_leaves:
            leave_instead_of_answering(world, at)
            with pytest.raises(NotConnected, match="disconnected before it answered"):
                Companion(link, band_id, client).topup(serial, 700, key=f"ble-leave-{at}")
        else:
            with pytest.raises(BleError):
                Companion(Dropping(link, world, at, after_band=True), band_id, client).topup(
                    serial, 700, key=f"ble-drop-{at}")
        ended.append(([o["state"] for o in client.orders(band_id)], band.balances()["transit"]))
        assert [o["state"] for o in Companion(world.connect(), band_id, client).sync()] in (
            [], ["settled"])
        assert band.balances()["transit"] == client.cards(band_id)[0]["balance"] == 700
    assert ended[0] == ended[1]
