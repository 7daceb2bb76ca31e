"""GlobalPlatform on the band: secure channels, domains, and a card's whole life under SCP03."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from applets import iso7816, selection
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.gp import cplc
from applets.gp.channel import Level
from applets.gp.domain import ISD_AID
from applets.gp.keys import KeySet
from applets.gp.loadfiles import LOAD_FILES
from applets.pboc.perso import to_dgis
from applets.sw import SW
from issuer import gp
from issuer.products import TRANSIT
from reader import places
from reader.errors import CardProtocolError, CardRemoved, TransactionRefused
from reader.flow import Flow, run
from reader.gate import Direction, GateConfig, MetroGate
from reader.load import LoadKeys, LoadTerminal
from reader.metro import MetroNetwork
from reader.psam import Psam
from reader.transport import in_field
from tests.conftest import Clock, make_band, seeded, serial_for
from tests.support.gp import (
    LEVEL,
    OPERATOR_KEYS,
    PURSE_LOAD_FILE,
    PURSE_MODULE,
    SD_LOAD_FILE,
    SD_MODULE,
    SSD_AID,
    expect_ok,
    on,
    sender,
    session,
)
from wallet.band import Band

NETWORK = MetroNetwork.load()


def _nothing(channel: gp.HostChannel) -> Flow[Any]:
    return None
    yield  # a flow that sends nothing more


def test_the_card_manager_answers_to_the_test_keys_and_lists_the_card():
    band = make_band(TRANSIT)

    def listing(channel: gp.HostChannel) -> Flow[Any]:
        isd = yield from channel.send(gp.get_status(0x80), "GET STATUS ISD")
        apps = yield from channel.send(gp.get_status(0x40), "GET STATUS apps")
        files = yield from channel.send(gp.get_status(0x10), "GET STATUS load files")
        return gp.parse_status(isd), gp.parse_status(apps), gp.parse_status(files)

    isd, apps, files = on(band, session(ISD_AID, KeySet.test_keys(), listing))
    assert [r.aid for r in isd] == [ISD_AID]
    assert [(r.aid, r.domain) for r in apps] == [(TRANSIT.aid, ISD_AID)]
    assert [r.aid for r in files] == [lf.aid for lf in LOAD_FILES]


def test_get_data_without_a_channel():
    band = make_band()

    def data() -> Flow[Any]:
        yield from expect_ok(selection.select(ISD_AID))
        raw = yield from expect_ok(iso7816.get_data(0x9F7F))
        keys = yield from expect_ok(iso7816.get_data(0x00E0))
        return raw, keys

    raw, keys = on(band, data())
    fields = cplc.parse(raw[3:])
    assert fields["ic_fabricator"] == bytes.fromhex("4790")
    assert fields["ic_serial_number"] == band.uid[-4:]
    assert keys.hex().upper() == "E012" + "C00401FF8810" + "C00402FF8810" + "C00403FF8810"


def test_management_needs_an_authenticated_channel():
    band = make_band()
    band.power_on()
    assert ResponseAPDU.parse(band.transmit(gp.get_status(0x80).encode())).sw == \
        SW.SECURITY_STATUS_NOT_SATISFIED
    install = gp.install(SD_LOAD_FILE, SD_MODULE, SSD_AID, b"\x80")
    assert ResponseAPDU.parse(band.transmit(install.encode())).sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_wrong_keys_are_refused_by_the_host_before_anything_is_sent():
    band = make_band()
    wrong = KeySet(0xFF, 3, bytes(16), bytes(16), bytes(16))
    with pytest.raises(gp.AuthenticationFailed):
        on(band, session(ISD_AID, wrong, _nothing))


def test_a_forged_host_cryptogram_is_refused_and_counted_until_the_keys_block():
    band = make_band()
    band.power_on()
    for attempt in range(10):
        band.transmit(selection.select(ISD_AID).encode())
        assert ResponseAPDU.parse(band.transmit(bytes.fromhex("8050000008") + bytes(8))).sw == SW.OK
        forged = ResponseAPDU.parse(band.transmit(bytes.fromhex("8482330010") + bytes(16)))
        assert forged.sw == SW.VERIFY_FAILED, attempt
    blocked = ResponseAPDU.parse(band.transmit(bytes.fromhex("8050000008") + bytes(8)))
    assert blocked.sw == SW.AUTHENTICATION_METHOD_BLOCKED


def test_a_tampered_command_closes_the_channel():
    band = make_band()

    def tamper(channel: gp.HostChannel) -> Flow[Any]:
        wrapped = channel.wrap(gp.get_status(0x80))
        bad = CommandAPDU(wrapped.cla, wrapped.ins, wrapped.p1, 0x03, wrapped.data, wrapped.ne)
        first = yield bad
        second = yield channel.wrap(gp.get_status(0x80))
        return first.sw, second.sw

    first, second = on(band, session(ISD_AID, KeySet.test_keys(), tamper))
    assert first == SW.SECURITY_STATUS_NOT_SATISFIED
    assert second == SW.SECURITY_STATUS_NOT_SATISFIED, "no command is accepted after a bad MAC"


# -- a card's whole life, with a power cut at every write of every step ---------------------


class _Recorder:
    """The band in the field, noting the card's memory after every command."""

    def __init__(self, band: Band, tear: tuple[int, int] | None = None) -> None:
        self.band, self.tear = band, tear
        self.snapshots = [band.se.store.snapshot()]
        self.writes: list[int] = []

    def power_on(self) -> None:
        self.band.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        store = self.band.se.store
        before = store.writes
        if self.tear is not None and len(self.writes) + 1 == self.tear[0]:
            store.tear_after = before + self.tear[1]
        try:
            response = self.band.transmit(apdu)
        finally:
            store.tear_after = None
        self.writes.append(store.writes - before)
        self.snapshots.append(store.snapshot())
        return response


def step(image, flow: Callable[[], Flow[Any]]):
    """Run one management step, then again torn at every write of every command."""
    reference = _Recorder(Band.from_image(image, seeded(9)))
    with in_field(reference) as link:
        run(flow(), link)
    for number, writes in enumerate(reference.writes, start=1):
        for k in range(writes):
            band = Band.from_image(image, seeded(9))
            torn = _Recorder(band, (number, k))
            with pytest.raises(CardRemoved), in_field(torn) as link:
                run(flow(), link)
            band.power_on()
            state = band.se.store.snapshot()
            assert state in (reference.snapshots[number - 1], reference.snapshots[number]), \
                f"command {number}, tear before write {k + 1}"
    return reference.band.to_image()


def _gate_tap(band: Band, clock: Clock) -> str:
    keys = {TRANSIT.issuer_id: TRANSIT.master.purchase}
    here = NETWORK.find("Xidan")
    entry = MetroGate(Psam(places.gate_id(here.code), keys), clock,
                      GateConfig(NETWORK, here, Direction.ENTRY))
    try:
        with in_field(band) as link:
            run(entry.tap(), link)
    except TransactionRefused as refusal:
        return refusal.reason
    return "accepted"


def test_empty_band_to_deleted_card_under_scp03_torn_at_every_write():
    band = make_band()  # only the card manager
    image = band.to_image()

    image = step(image, lambda: session(ISD_AID, KeySet.test_keys(), lambda c: c.send(
        gp.install(SD_LOAD_FILE, SD_MODULE, SSD_AID, b"\x80\x40\x00"), "INSTALL SSD")))
    image = step(image, lambda: session(SSD_AID, KeySet.test_keys(), lambda c: c.send(
        gp.put_key(c, OPERATOR_KEYS), "PUT KEY")))

    personalisation = TRANSIT.personalisation(serial_for(TRANSIT), bytes.fromhex("20260101"),
                                              bytes.fromhex("20361231"), "Lifecycle")

    def issue(channel: gp.HostChannel) -> Flow[Any]:
        yield from channel.send(gp.install(PURSE_LOAD_FILE, PURSE_MODULE, TRANSIT.aid), "INSTALL")
        yield from channel.send(gp.install_for_personalization(TRANSIT.aid), "INSTALL perso")
        blocks = gp.dgi_blocks(to_dgis(personalisation, channel.encrypt_key))
        for number, block in enumerate(blocks):
            last = number == len(blocks) - 1
            yield from channel.send(gp.store_data(block, number, last, encrypted=True), "STORE DATA")
        return None

    image = step(image, lambda: session(SSD_AID, OPERATOR_KEYS, issue))

    clock = Clock()
    band = Band.from_image(image, seeded(9))
    loader = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(TRANSIT.master.load,
                                                                         TRANSIT.master.tac)}, clock)
    with in_field(band) as link:
        run(loader.load(1000), link)
    assert _gate_tap(band, clock) == "accepted"
    clock.now += timedelta(hours=5)  # a fresh journey each time

    lock = lambda: session(SSD_AID, OPERATOR_KEYS, lambda c: c.send(  # noqa: E731
        gp.set_status(TRANSIT.aid, lock=True), "LOCK"))
    image = step(band.to_image(), lock)
    band = Band.from_image(image, seeded(9))
    assert "not" in _gate_tap(band, clock)

    unlock = lambda: session(SSD_AID, OPERATOR_KEYS, lambda c: c.send(  # noqa: E731
        gp.set_status(TRANSIT.aid, lock=False), "UNLOCK"))
    image = step(image, unlock)
    band = Band.from_image(image, seeded(9))
    assert _gate_tap(band, clock) == "accepted"

    delete = lambda: session(SSD_AID, OPERATOR_KEYS, lambda c: c.send(  # noqa: E731
        gp.delete(TRANSIT.aid), "DELETE"))
    image = step(band.to_image(), delete)
    band = Band.from_image(image, seeded(9))
    assert "not" in _gate_tap(band, clock)
    assert not [k for k in band.se.store.snapshot() if k.startswith(f"app/{TRANSIT.aid.hex().upper()}")]


def test_the_band_makers_keys_open_nothing_of_an_operators_card():
    band = make_band()
    image = band.to_image()
    band = Band.from_image(image, seeded(9))
    on(band, session(ISD_AID, KeySet.test_keys(), lambda c: c.send(
        gp.install(SD_LOAD_FILE, SD_MODULE, SSD_AID, b"\x80\x40\x00"), "INSTALL SSD")))
    on(band, session(SSD_AID, KeySet.test_keys(), lambda c: c.send(gp.put_key(c, OPERATOR_KEYS),
                                                                   "PUT KEY")))
    on(band, session(SSD_AID, OPERATOR_KEYS, lambda c: c.send(
        gp.install(PURSE_LOAD_FILE, PURSE_MODULE, TRANSIT.aid), "INSTALL")))
    with pytest.raises(TransactionRefused):  # the SSD no longer answers to the test keys
        on(band, session(SSD_AID, KeySet.test_keys(), _nothing))
    for command in (gp.install_for_personalization(TRANSIT.aid), gp.set_status(TRANSIT.aid, True),
                    gp.delete(TRANSIT.aid)):
        with pytest.raises(CardProtocolError) as refused:
            on(band, session(ISD_AID, KeySet.test_keys(), sender(command)))
        assert refused.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED


@pytest.mark.parametrize("i", [0x55, 0x15])
def test_a_legacy_tool_manages_an_scp02_band(i):
    band = Band.new("legacy", seeded(5), scp=2, scp02_i=i)
    level = Level.C_MAC | Level.C_DECRYPTION
    des_keys = KeySet(0x20, 2, bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))

    def manage(channel: gp.HostChannel) -> Flow[Any]:
        yield from channel.send(gp.install(SD_LOAD_FILE, SD_MODULE, SSD_AID, b"\x80\x40\x00"),
                                "INSTALL SSD")
        answer = yield from channel.send(gp.put_key(channel, des_keys), "PUT KEY")
        listing = yield from channel.send(gp.get_status(0x40), "GET STATUS")
        return answer, gp.parse_status(listing)

    def legacy(aid: bytes, keys: KeySet, body) -> Flow[Any]:
        yield from expect_ok(selection.select(aid))
        card_data = yield from expect_ok(iso7816.get_data(0x0066))
        assert card_data.endswith(bytes((0x02, i)))  # the domain announces its i parameter
        channel = yield from gp.open_channel(keys, level, seeded(4), scp02_i=i)
        return (yield from body(channel))

    answer, rows = on(band, legacy(ISD_AID, KeySet.test_keys(2), manage))
    assert answer[0] == 0x20 and len(answer) == 1 + 3 * 3
    assert [r.aid for r in rows] == [SSD_AID]
    with pytest.raises(TransactionRefused):  # the test keys are gone from the ISD
        on(band, legacy(ISD_AID, KeySet.test_keys(2), _nothing))
    rows = on(band, legacy(ISD_AID, des_keys, sender(gp.get_status(0x40))))
    assert gp.parse_status(rows)[0].aid == SSD_AID
    assert ResponseAPDU.parse(band.transmit(bytes.fromhex("8050000008") + bytes(8))).data[11] == 2


@pytest.mark.parametrize(("scheme", "scp"), [("kdf3", 3), ("emv", 2), ("visa2", 2)])
def test_each_band_answers_to_its_own_diversified_keys(scheme, scp):
    master = KeySet(0xFF, scp, bytes(range(0x40, 0x50)), bytes(range(0x40, 0x50)),
                    bytes(range(0x40, 0x50)))
    derive = gp.diversified(master, scheme)
    first = Band.new("one", seeded(1), scp, isd_keys=derive)
    second = Band.new("two", seeded(2), scp, isd_keys=derive)
    level = Level.C_MAC if scp == 2 else LEVEL

    def opened(band: Band) -> object:
        def flow() -> Flow[Any]:
            yield from expect_ok(selection.select(ISD_AID))
            yield from gp.open_channel(master, level, seeded(3), diversify=derive)
            return "opened"
        return on(band, flow())

    assert opened(first) == opened(second) == "opened"
    assert derive(first.div_data) != derive(second.div_data)
    with pytest.raises(TransactionRefused):  # the master itself opens nothing
        on(first, session(ISD_AID, master, _nothing, level=level))
