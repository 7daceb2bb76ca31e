"""The band's GATT service and the companion's bleak central over Bumble's virtual controllers.

Two Bumble stacks, each on a virtual controller, joined by one in-process
link: real advertising, connection, SMP pairing with LE Secure Connections,
encryption, ATT and GATT, with no radio. The phone is the bleak central
(:class:`~phone.ble.central.BandCentral`) on our Bumble backend, as on a
controller; the band is its Bumble GATT server. Each test runs its own event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError
from bumble import att, smp
from bumble.pairing import PairingConfig, PairingDelegate

from ble import spec
from ble.errors import (
    BleError,
    CharacteristicRefused,
    EncryptionRequired,
    LinkPairingFailed,
    NotConnected,
)
from ble.link import ATT_MTU
from ble.virtual import virtual_radio
from phone.ble.bumble_backend import backend
from phone.ble.bumble_backend.client import BumbleClient
from phone.ble.bumble_backend.stack import BumbleStack
from phone.ble.central import BandCentral
from wallet.ble.peripheral import BandPeripheral

BAND_INFO = json.dumps({"id": "4B4F414C41", "firmware": "1.0", "battery": 87}).encode()
CARDS = json.dumps([{"name": "Beijing T-Union", "balance": 2350, "active": True}]).encode()
FAIL = b"fail"  # the control handler raises on this
TIMEOUT_S = 5.0  # generous: a run takes milliseconds, this only stops a hang
RUN_TIMEOUT_S = 30.0  # the whole run: radio, band and phone up, connect, scenario, all down


@dataclass
class Person:
    """Someone looking at a device's screen: says yes or no to the six digits it shows."""

    answer: bool = True
    seen: list[int] = field(default_factory=list)

    async def confirm(self, number: int) -> bool:
        self.seen.append(number)
        return self.answer


@dataclass
class Scene:
    band: BandPeripheral
    phone: BandCentral
    stack: BumbleStack  # the phone's Bluetooth stack, below bleak
    wearer: Person
    owner: Person
    control: list[bytes]
    relay: list[bytes]


def run(scenario: Callable[[Scene], Awaitable[None]], *, wearer: Person | None = None,
        owner: Person | None = None, mtu: int | None = ATT_MTU, connect: bool = True) -> None:
    """Start a band and a phone on one virtual link, connect them (the phone finds the band), run."""
    wearer, owner = wearer or Person(), owner or Person()

    async def main() -> None:
        control: list[bytes] = []
        relay: list[bytes] = []

        def on_control(data: bytes) -> None:
            if data == FAIL:
                raise RuntimeError("the band's control handler failed")
            control.append(data)

        async with virtual_radio() as radio:
            band = BandPeripheral(
                radio.host(), address="C0:00:00:00:00:01", name_suffix="1A2B",
                band_info=lambda: BAND_INFO, card_list=lambda: CARDS,
                on_control=on_control, on_relay=relay.append,
                confirm_number=wearer.confirm, advertising_interval_ms=20)
            stack = BumbleStack(radio.host(), address="C0:00:00:00:00:02",
                                confirm_number=owner.confirm, mtu=mtu)
            phone = BandCentral(backend(stack))
            await stack.start()
            async with band:
                if connect:
                    await phone.connect(await phone.find_band(timeout=TIMEOUT_S), timeout=TIMEOUT_S)
                scene = Scene(band, phone, stack, wearer, owner, control, relay)
                await asyncio.wait_for(scenario(scene), TIMEOUT_S)
                await phone.disconnect()
            await stack.stop()

    asyncio.run(asyncio.wait_for(main(), timeout=RUN_TIMEOUT_S))


def test_the_band_advertises_its_service_and_a_name_that_starts_with_koala():
    async def scenario(s: Scene) -> None:
        found = await s.phone.find_band(timeout=TIMEOUT_S)
        assert found.address == "C0:00:00:00:00:01"
        # 31 bytes hold flags, the 128-bit UUID and 8 bytes of name; the
        # virtual controller sends no scan response with the whole name.
        assert s.band.name == "Koala 1A2B" and found.name == "Koala 1A"
        assert found.name.startswith(spec.DEVICE_NAME_PREFIX)

    run(scenario, connect=False)


def test_numeric_comparison_pairs_when_both_people_confirm_the_same_six_digits():
    async def scenario(s: Scene) -> None:
        assert not s.band.encrypted
        await s.phone.pair()
        assert s.band.encrypted
        assert await s.phone.read_card_list() == CARDS
        assert len(s.wearer.seen) == 1 and s.wearer.seen == s.owner.seen
        assert 0 <= s.wearer.seen[0] <= 999_999

    run(scenario)


@pytest.mark.parametrize("who_says_no", ["wearer", "owner"])
def test_pairing_fails_when_either_person_says_no_and_the_card_list_stays_refused(who_says_no):
    wearer, owner = Person(answer=who_says_no != "wearer"), Person(answer=who_says_no != "owner")

    async def scenario(s: Scene) -> None:
        with pytest.raises(LinkPairingFailed) as failed:
            await s.phone.pair()
        assert failed.value.reason == "CONFIRM_VALUE_FAILED"
        assert not s.band.encrypted
        with pytest.raises(EncryptionRequired):
            await s.phone.read_card_list()

    run(scenario, wearer=wearer, owner=owner)


@pytest.mark.parametrize(("sc", "io_capability"), [
    (True, PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),  # Just Works
    (True, PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY),  # passkey entry
    (False, PairingDelegate.IoCapability.DISPLAY_OUTPUT_AND_YES_NO_INPUT),  # legacy pairing
])
def test_the_band_refuses_any_pairing_but_secure_connections_numeric_comparison(sc, io_capability):
    async def scenario(s: Scene) -> None:
        # A phone that is not our companion: plain Bumble SMP with another IO capability.
        config = PairingConfig(sc=sc, mitm=True, bonding=True,
                               delegate=PairingDelegate(io_capability))
        s.stack.device.pairing_config_factory = lambda connection: config
        s.stack.device.smp_session_proxy = smp.Session
        with pytest.raises(LinkPairingFailed) as failed:
            await s.phone.pair()
        assert failed.value.reason == "AUTHENTICATION_REQUIREMENTS"
        assert s.wearer.seen == [] and not s.band.encrypted
        with pytest.raises(EncryptionRequired):
            await s.phone.write_relay(b"\x01")

    run(scenario)


def test_before_pairing_band_info_reads_but_protected_characteristics_are_refused():
    async def scenario(s: Scene) -> None:
        assert await s.phone.read_band_info() == BAND_INFO
        for attempt in (s.phone.read_card_list(), s.phone.write_relay(b"\x00\xa4"),
                        s.phone.write_control(b"lock"), s.phone.subscribe_relay(lambda _: None)):
            with pytest.raises(EncryptionRequired) as refused:
                await attempt
            assert refused.value.att_error == att.ErrorCode.INSUFFICIENT_ENCRYPTION
            assert isinstance(refused.value.__cause__, BleakGATTProtocolError)
        await s.phone.write_relay(b"\x00\xa4", response=False)  # a Write Command: no answer
        await s.phone.read_band_info()  # (a round trip, so the band has seen it by now)
        assert s.relay == [] and s.control == []
        with pytest.raises(EncryptionRequired):  # and the band will not send, either
            await s.band.notify_relay(b"\x90\x00")

    run(scenario)


def test_after_pairing_the_companion_reads_cards_and_relays_both_ways():
    async def scenario(s: Scene) -> None:
        await s.phone.pair()
        assert await s.phone.read_card_list() == CARDS
        heard: asyncio.Queue[bytes] = asyncio.Queue()
        await s.phone.subscribe_relay(heard.put_nowait)

        await s.phone.write_relay(b"\x00\xa4\x04\x00")
        await s.phone.write_control(b"\x01")
        assert s.relay == [b"\x00\xa4\x04\x00"] and s.control == [b"\x01"]  # write with response
        await s.phone.write_relay(b"\x01", response=False)
        await s.phone.write_relay(b"\x02")  # a Write Command goes ahead of a later request
        assert s.relay[1:] == [b"\x01", b"\x02"]

        await s.band.notify_relay(b"\x6f\x00\x90\x00")
        assert await asyncio.wait_for(heard.get(), timeout=TIMEOUT_S) == b"\x6f\x00\x90\x00"

    run(scenario)


def test_a_full_fragment_fits_one_write_and_one_notification_and_a_longer_one_is_refused():
    async def scenario(s: Scene) -> None:
        await s.phone.pair()
        heard: asyncio.Queue[bytes] = asyncio.Queue()
        await s.phone.subscribe_relay(heard.put_nowait)
        assert s.phone.payload == spec.payload_size(ATT_MTU)
        full = bytes(range(spec.payload_size(ATT_MTU)))
        await s.phone.write_relay(full)
        await s.band.notify_relay(full)
        assert s.relay == [full] and await asyncio.wait_for(heard.get(), timeout=TIMEOUT_S) == full
        with pytest.raises(ValueError, match="at most 244 bytes"):
            await s.phone.write_relay(full + b"\x00")
        with pytest.raises(ValueError, match="at most 244 bytes"):
            await s.band.notify_relay(full + b"\x00")

    run(scenario)


def test_the_companion_hears_that_the_card_list_changed():
    async def scenario(s: Scene) -> None:
        await s.phone.pair()
        changed = asyncio.Event()
        await s.phone.subscribe_card_list(changed.set)
        await s.band.notify_card_list()
        await asyncio.wait_for(changed.wait(), timeout=TIMEOUT_S)

    run(scenario)


def test_the_band_will_not_notify_relay_out_nobody_subscribed_to():
    async def scenario(s: Scene) -> None:
        await s.phone.pair()
        with pytest.raises(BleError, match="not subscribed"):
            await s.band.notify_relay(b"\x90\x00")

    run(scenario)


def test_a_failing_band_handler_refuses_the_write_instead_of_hanging_it():
    async def scenario(s: Scene) -> None:
        await s.phone.pair()
        with pytest.raises(CharacteristicRefused) as refused:
            await s.phone.write_control(FAIL)
        assert refused.value.att_error == att.ErrorCode.UNLIKELY_ERROR
        await s.phone.write_control(b"\x01")  # the link survives
        assert s.control == [b"\x01"]

    run(scenario)


@pytest.mark.parametrize(("mtu", "expected"), [(ATT_MTU, 247), (None, 23)])
def test_the_att_mtu_is_247_when_both_ask_for_it_and_23_without_an_exchange(mtu, expected):
    async def scenario(s: Scene) -> None:
        assert s.phone.mtu == expected
        assert s.band.mtu == expected

    run(scenario, mtu=mtu)


def test_operations_without_a_link_say_so():
    async def scenario(s: Scene) -> None:
        with pytest.raises(NotConnected):
            await s.phone.read_band_info()
        with pytest.raises(NotConnected):
            await s.phone.pair()
        with pytest.raises(NotConnected):
            await s.band.notify_relay(b"")

    run(scenario, connect=False)


def test_a_band_that_goes_away_ends_the_link():
    async def scenario(s: Scene) -> None:
        await s.phone.pair()
        await s.band.stop()
        await asyncio.wait_for(s.phone.wait_disconnected(), timeout=TIMEOUT_S)
        assert not s.phone.connected
        with pytest.raises(NotConnected):
            await s.phone.read_card_list()

    run(scenario)


def test_a_bleak_client_given_only_an_address_finds_the_band_by_scanning_and_unpairs():
    """Our backend as any bleak program uses it: BleakClient with a bare address."""
    async def scenario(s: Scene) -> None:
        client = BleakClient("C0:00:00:00:00:01", backend=BumbleClient, timeout=TIMEOUT_S,
                             **s.stack.options())
        await client.connect()
        assert client.mtu_size == ATT_MTU
        assert await client.read_gatt_char(spec.BAND_INFO.uuid) == BAND_INFO
        await client.pair()
        keystore = s.stack.device.keystore
        assert keystore is not None and len(await keystore.get_all()) == 1  # the band's bond
        await client.unpair()
        assert await keystore.get_all() == []
        await client.disconnect()
        assert not client.is_connected

    run(scenario, connect=False)
