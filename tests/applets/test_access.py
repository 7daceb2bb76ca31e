"""The door access card: mutual authentication, permissions, replay, tries, tears, fuzz.

The card is driven through the door reader's own flow where it can be, and
by hand (raw APDUs) where a test needs to be a reader that misbehaves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import selection
from applets.access.card import LOG_ENTRIES, AccessCard
from applets.access.perso import (
    CARD_ID,
    KEY,
    PERMISSIONS,
    TRIES,
    AccessPersonalisation,
    AccessUpdate,
    from_dgis,
    to_dgis,
    update_dgis,
)
from applets.access.wire import (
    ACCESS_AID,
    AUTH_COMMAND,
    AUTH_RESPONSE,
    GRANT_RESPONSE,
    INS_PROOF,
    LOG_ENTRY,
    PERMISSION,
    PROOF_COMMAND,
    AuthCommand,
    AuthResponse,
    GrantResponse,
    LogEntry,
    Permission,
    ProofCommand,
)
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.crypto import access as crypto
from applets.crypto.scp03 import aes_cmac, counter_kdf
from applets.errors import PowerLoss
from applets.gp import loadfiles
from applets.gp.channel import Level
from applets.gp.domain import ISD_AID
from applets.gp.keys import KeySet
from applets.layout import Layout
from applets.registry import PERSONALIZED
from applets.sw import SW, is_valid
from issuer import gp
from issuer.products import TRANSIT
from reader import pboc
from reader.door import DOOR_REJECTED, NOT_OF_THIS_SITE, Admission, DoorReader, challenge, proof, select
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import Flow, run
from reader.trace import Exchange
from reader.transport import in_field
from tests import vectors
from tests.conftest import NOW, Clock, make_band, seeded, tear_at_every_write
from tests.support.access import (
    CARD,
    FRONT,
    GARAGE,
    LAB,
    PERMITS,
    ROOF,
    SITE_KEY,
    H,
    Replay,
    access_band,
    door,
)
from tests.support.purse import load, send
from wallet.band import Band

OTHER_SITE_KEY = H("B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")
PREFIX = f"app/{ACCESS_AID.hex().upper()}/"
ACCESS_FILE = loadfiles.load_file_of(loadfiles.ACCESS_CARD)
ACCESS_MODULE = next(iter(ACCESS_FILE.modules))


def tap(band: Band, reader: DoorReader) -> Admission:
    with in_field(band) as link:
        return run(reader.tap(), link)


def refusal(band: Band, reader: DoorReader, link_of: Callable[[Band], Any] | None = None) -> str:
    with in_field(band) as link, pytest.raises(TransactionRefused) as refused:
        run(reader.tap(), link_of(band) if link_of else link)
    return refused.value.reason


def applet(band: Band) -> AccessCard:
    card = band.se.applet(ACCESS_AID)
    assert isinstance(card, AccessCard)
    return card


def cells(band: Band, prefix: str = PREFIX) -> dict[str, bytes]:
    return {k: v for k, v in band.se.store.snapshot().items() if k.startswith(prefix)}


def date_time(moment: datetime = NOW) -> tuple[bytes, bytes]:
    return H(moment.strftime("%Y%m%d")), H(moment.strftime("%H%M%S"))


def wrong_proof(band: Band, door_id: int = FRONT) -> int:
    """A reader without the key: a challenge, then a made-up cryptogram. Its status word."""
    assert send(band, select()).sw == SW.OK
    assert send(band, challenge(AuthCommand(door_id, bytes(16)))).sw == SW.OK
    return send(band, proof(ProofCommand(*date_time(), bytes(8)))).sw


class Tamper:
    """The band behind a man in the middle who edits one command or one answer."""

    def __init__(self, band: Band, ins: int, command: Callable[[bytes], bytes] | None = None,
                 answer: Callable[[bytes], bytes] | None = None) -> None:
        self.band, self.ins, self.command, self.answer = band, ins, command, answer
        self.trace: list[Exchange] = []

    def transmit(self, apdu: bytes) -> bytes:
        hit = apdu[1] == self.ins
        if hit and self.command:
            parsed = CommandAPDU.parse(apdu)
            apdu = replace(parsed, data=self.command(parsed.data)).encode()
        response = self.band.transmit(apdu)
        if hit and self.answer:
            response = self.answer(response[:-2]) + response[-2:]
        self.trace.append(Exchange(apdu, response, 0.0))
        return response


def flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


# -- the door opens, and for whom -----------------------------------------------------------


def test_the_door_opens_for_a_permitted_door_and_the_card_logs_the_entry():
    band = access_band()
    admission = tap(band, door())
    assert admission.card_id == CARD
    assert admission.permission == PERMITS[0]
    assert (admission.date, admission.time) == date_time()
    assert applet(band).entry_log() == [LogEntry(FRONT, *date_time())]


def test_the_log_keeps_the_last_entries_newest_first():
    band = access_band()
    for minute in range(LOG_ENTRIES + 2):
        tap(band, door(now=NOW.replace(minute=minute)))
    log = applet(band).entry_log()
    assert len(log) == LOG_ENTRIES
    assert [entry.time for entry in log] == [date_time(NOW.replace(minute=m))[1]
                                             for m in range(LOG_ENTRIES + 1, 1, -1)]


def test_another_door_is_refused_only_after_the_door_proved_the_key():
    band = access_band()
    with in_field(band) as link, pytest.raises(TransactionRefused, match="no access at this door"):
        run(door(LAB).tap(), link)
    assert ResponseAPDU.parse(link.trace[-1].response).sw == SW.REFERENCED_DATA_NOT_FOUND
    assert link.trace[-1].command[1] == INS_PROOF  # the card said nothing of it before
    assert applet(band).entry_log() == []


@pytest.mark.parametrize(("door_id", "now", "reason"), [
    (GARAGE, NOW, "access here starts on 2027-01-01"),
    (ROOF, NOW, "access here ended on 2025-12-31"),
    (FRONT, datetime(2037, 1, 1, 0, 0, 0), "access here ended on 2036-12-31"),
    (FRONT, datetime(2025, 12, 31, 23, 59, 59), "access here starts on 2026-01-01"),
])
def test_outside_the_validity_window_the_door_stays_shut(door_id, now, reason):
    assert refusal(access_band(), door(door_id, now=now)) == reason


@pytest.mark.parametrize("now", [datetime(2026, 1, 1, 0, 0, 0), datetime(2036, 12, 31, 23, 59, 59)])
def test_the_window_includes_its_first_and_last_day(now):
    assert tap(access_band(), door(now=now)).permission.door_id == FRONT


def test_a_door_of_another_site_does_not_recognise_the_card():
    band = access_band()
    before = cells(band)
    with in_field(band) as link, pytest.raises(TransactionRefused, match=NOT_OF_THIS_SITE):
        run(door(key=OTHER_SITE_KEY).tap(), link)
    assert len(link.trace) == 2, "the door stops before it sends a proof"
    assert cells(band) == before


def test_a_card_of_another_site_is_not_recognised():
    assert refusal(access_band(site_key=OTHER_SITE_KEY), door()) == NOT_OF_THIS_SITE


def test_without_an_access_card_the_door_selects_nothing_else():
    band = make_band(TRANSIT)
    with in_field(band) as link, pytest.raises(TransactionRefused, match="no access card on this band"):
        run(door().tap(), link)
    assert [e.command for e in link.trace] == [select().encode()]


def test_a_card_not_yet_personalised_is_refused():
    band = make_band()
    band.se.install(ACCESS_AID, loadfiles.ACCESS_CARD)
    band.se.store.commit()
    assert refusal(band, door()) == "access card not personalised: see the access issuer"


# -- replay -----------------------------------------------------------------------------------------


def test_a_replayed_door_exchange_is_refused_by_the_card():
    band = access_band()
    with in_field(band) as link:
        run(door().tap(), link)
    recorded = link.trace
    log, tries = applet(band).entry_log(), applet(band).tries_left()
    band.power_on()
    answers = [ResponseAPDU.parse(band.transmit(e.command)) for e in recorded]
    assert [a.sw for a in answers[:2]] == [SW.OK, SW.OK]
    assert answers[1].data != ResponseAPDU.parse(recorded[1].response).data, "a fresh RndC"
    assert answers[2].sw == 0x63C0 | (tries - 1)
    assert applet(band).entry_log() == log


def test_recorded_card_answers_do_not_open_the_door():
    band = access_band()
    reader = door()
    with in_field(band) as link:
        run(reader.tap(), link)
    fake = Replay([e.response for e in link.trace])
    with pytest.raises(TransactionRefused, match=NOT_OF_THIS_SITE):
        run(reader.tap(), fake)
    assert len(reader.admissions) == 1


def test_recorded_card_answers_do_not_open_another_door_of_the_site():
    band = access_band()
    with in_field(band) as link:
        run(door(FRONT).tap(), link)
    with pytest.raises(TransactionRefused, match=NOT_OF_THIS_SITE):
        run(door(GARAGE, seed=11).tap(), Replay([e.response for e in link.trace]))


# -- a man in the middle ---------------------------------------------------------------------------


CHALLENGE, PROOF = 0x88, 0x82


@pytest.mark.parametrize(("ins", "command", "answer", "reason"), [
    (CHALLENGE, None, lambda d: flip(d, -1), NOT_OF_THIS_SITE),  # card cryptogram
    (CHALLENGE, None, lambda d: flip(d, 0), NOT_OF_THIS_SITE),  # card id
    (CHALLENGE, None, lambda d: flip(d, 8), NOT_OF_THIS_SITE),  # card challenge
    (CHALLENGE, lambda d: (GARAGE).to_bytes(4) + d[4:], None, NOT_OF_THIS_SITE),  # door id
    (PROOF, lambda d: flip(d, -1), None, DOOR_REJECTED),
    (PROOF, lambda d: H("20260101") + d[4:], None, DOOR_REJECTED),
    (PROOF, None, lambda d: flip(d, -1), "the card's permission failed its MAC"),
    (PROOF, None, lambda d: d[:8] + H("20991231") + d[12:], "the card's permission failed its MAC"),
])
def test_an_altered_exchange_does_not_open_the_door(ins, command, answer, reason):
    band = access_band()
    assert refusal(band, door(), lambda b: Tamper(b, ins, command, answer)) == reason


def test_an_altered_door_cryptogram_costs_a_try_and_logs_nothing():
    band = access_band()
    refusal(band, door(), lambda b: Tamper(b, PROOF, lambda d: flip(d, -1)))
    assert applet(band).tries_left() == 2
    assert applet(band).entry_log() == []


# -- tries ----------------------------------------------------------------------------------------


def test_wrong_door_cryptograms_count_down_and_block_the_card():
    band = access_band()
    band.power_on()
    assert [wrong_proof(band) for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert applet(band).tries_left() == 0
    assert send(band, challenge(AuthCommand(FRONT, bytes(16)))).sw == SW.AUTHENTICATION_METHOD_BLOCKED
    assert "blocked" in refusal(band, door())
    assert applet(band).entry_log() == []


def test_a_genuine_door_restores_the_tries():
    band = access_band()
    band.power_on()
    assert wrong_proof(band) == 0x63C2
    tap(band, door())
    assert applet(band).tries_left() == 3


def test_a_genuine_door_restores_the_tries_even_without_a_permission():
    band = access_band()
    band.power_on()
    assert wrong_proof(band) == 0x63C2
    assert refusal(band, door(LAB)) == "no access at this door"
    assert applet(band).tries_left() == 3


def test_a_date_that_is_not_bcd_costs_no_try():
    band = access_band()
    band.power_on()
    send(band, select())
    send(band, challenge(AuthCommand(FRONT, bytes(16))))
    assert send(band, proof(ProofCommand(H("2026AA01"), H("083000"), bytes(8)))).sw == SW.WRONG_DATA
    assert applet(band).tries_left() == 3


# -- the session -------------------------------------------------------------------------------------


def _session_then(band: Band, between: list[CommandAPDU]) -> int:
    """Challenge, ``between``, then the right proof for that challenge; the proof's SW."""
    band.power_on()
    send(band, select())
    rnd_d = bytes(range(16))
    answer = AUTH_RESPONSE.parse(send(band, challenge(AuthCommand(FRONT, rnd_d))).data)
    key = crypto.session_key(crypto.card_key(SITE_KEY, CARD), rnd_d, answer.card_challenge)
    date, time = date_time()
    cryptogram = crypto.door_cryptogram(key, rnd_d, answer.card_challenge, CARD, FRONT, date, time)
    for command in between:
        send(band, command)
    return send(band, proof(ProofCommand(date, time, cryptogram))).sw


def test_a_proof_right_after_its_challenge_is_granted():
    assert _session_then(access_band(), []) == SW.OK


@pytest.mark.parametrize("between", [
    [select()],
    [CommandAPDU(0x80, 0x5C, 0x00, 0x02, ne=4)],
    [CommandAPDU(0x80, INS_PROOF, 0x00, 0x00, bytes(3))],
    [pboc.select(TRANSIT.aid), select()],
])
def test_any_other_command_ends_the_session(between):
    band = access_band()
    assert _session_then(band, between) == SW.CONDITIONS_NOT_SATISFIED
    assert applet(band).tries_left() == 3


def test_a_tear_ends_the_session():
    band = access_band()
    band.power_on()
    send(band, select())
    send(band, challenge(AuthCommand(FRONT, bytes(16))))
    band.power_on()
    send(band, select())
    assert send(band, proof(ProofCommand(*date_time(), bytes(8)))).sw == SW.CONDITIONS_NOT_SATISFIED


@pytest.mark.parametrize(("apdu", "sw"), [
    ("80880000" + "13" + "00" * 19, SW.WRONG_LENGTH),
    ("80880100" + "14" + "00" * 20, SW.INCORRECT_P1_P2),
    ("80820000" + "10" + "00" * 16, SW.WRONG_LENGTH),
    ("808800", SW.WRONG_LENGTH),
    ("00B0000000", SW.INS_NOT_SUPPORTED),
    ("00B2010C00", SW.INS_NOT_SUPPORTED),
    ("84880000" + "14" + "00" * 20, SW.CLA_NOT_SUPPORTED),
    ("80CA9F7F00", SW.INS_NOT_SUPPORTED),
])
def test_malformed_commands_are_refused_and_change_nothing(apdu, sw):
    band = access_band()
    band.power_on()
    send(band, select())
    before = band.se.store.snapshot()
    assert send(band, apdu).sw == sw
    assert band.se.store.snapshot() == before


# -- key derivation -------------------------------------------------------------------------------------


KBKDF = vectors.load("kbkdf_cmac", "counter_kdf")


@pytest.mark.parametrize("v", KBKDF, ids=vectors.ids(KBKDF))
def test_sp800_108_counter_mode_cmac_known_answers(v):
    out = counter_kdf(H(v["key"]), H(v["prefix"]), H(v["suffix"]), v["length_bits"] // 8)
    assert out == H(v["expected"])


def test_the_card_key_is_one_cmac_over_the_documented_fixed_input():
    fixed = b"ACCESS" + b"\x00" + CARD + (128).to_bytes(2)
    assert crypto.card_key(SITE_KEY, CARD) == aes_cmac(SITE_KEY, b"\x01" + fixed)
    assert crypto.card_key(SITE_KEY, CARD) == counter_kdf(SITE_KEY, b"", fixed, 16)


def test_a_master_key_in_a_key_store_derives_the_same_card_key():
    assert crypto.card_key(partial(aes_cmac, SITE_KEY), CARD) == crypto.card_key(SITE_KEY, CARD)
    assert tap(access_band(), DoorReader(FRONT, partial(aes_cmac, SITE_KEY), Clock(), seeded(3)))


def test_every_card_and_every_session_has_its_own_key():
    other = crypto.card_key(SITE_KEY, CARD[:-1] + b"\x02")
    assert other != crypto.card_key(SITE_KEY, CARD) != crypto.card_key(OTHER_SITE_KEY, CARD)
    key = crypto.card_key(SITE_KEY, CARD)
    assert crypto.session_key(key, bytes(16), bytes(16)) != crypto.session_key(key, bytes(16), b"\x01" * 16)


def test_card_and_door_cryptograms_differ_on_the_same_inputs():
    session = crypto.session_key(crypto.card_key(SITE_KEY, CARD), bytes(16), bytes(16))
    card = crypto.card_cryptogram(session, bytes(16), bytes(16), CARD, FRONT)
    assert card != crypto.door_cryptogram(session, bytes(16), bytes(16), CARD, FRONT, *date_time())
    assert card != crypto.permission_mac(session, bytes(16) + bytes(16) + CARD + FRONT.to_bytes(4))


@pytest.mark.parametrize("call", [
    lambda: crypto.card_key(bytes(15), CARD),
    lambda: crypto.card_key(SITE_KEY, CARD[:7]),
    lambda: crypto.session_key(SITE_KEY, bytes(8), bytes(16)),
    lambda: crypto.kdf(SITE_KEY, b"A\x00B", b"", 16),
    lambda: crypto.kdf(SITE_KEY, b"ACCESS", b"", 0),
    lambda: crypto.card_cryptogram(SITE_KEY, bytes(16), bytes(16), CARD, 1 << 32),
])
def test_the_kdf_refuses_what_it_cannot_derive_from(call):
    with pytest.raises(ValueError):
        call()


# -- layouts ----------------------------------------------------------------------------------------------


def common(layout: Layout[Any], data: bytes, obj: object) -> None:
    assert layout.parse(data) == obj
    assert layout.build(obj) == data
    assert layout.size == len(data)


def test_layouts_parse_build_and_size():
    common(AUTH_COMMAND, H("00000101") + bytes(range(16)), AuthCommand(FRONT, bytes(range(16))))
    common(AUTH_RESPONSE, CARD + bytes(16) + b"\xaa" * 8, AuthResponse(CARD, bytes(16), b"\xaa" * 8))
    common(PROOF_COMMAND, H("20261123083000") + bytes(8), ProofCommand(H("20261123"), H("083000"), bytes(8)))
    common(PERMISSION, H("00000101" "20260101" "20361231"), PERMITS[0])
    common(GRANT_RESPONSE, bytes(12) + b"\x01" * 8, GrantResponse(bytes(12), b"\x01" * 8))
    common(LOG_ENTRY, H("00000101" "20261123" "083000"), LogEntry(FRONT, H("20261123"), H("083000")))


# -- personalisation -----------------------------------------------------------------------------------


def issue(band: Band, body: Callable[[gp.HostChannel], Flow[Any]]) -> Any:
    """Run ``body`` in an SCP03 channel with the band's card manager (the GP test keys)."""
    def flow() -> Flow[Any]:
        response = yield selection.select(ISD_AID)
        assert response.sw == SW.OK
        level = Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC
        channel = yield from gp.open_channel(KeySet.test_keys(), level, random.Random(5).randbytes)
        return (yield from body(channel))

    with in_field(band) as link:
        return run(flow(), link)


def store(dgis: list[tuple[int, bytes]], install: bool = False, encrypted: bool = True):
    def body(channel: gp.HostChannel) -> Flow[None]:
        if install:
            yield from channel.send(gp.install(ACCESS_FILE.aid, ACCESS_MODULE, ACCESS_AID), "INSTALL")
        yield from channel.send(gp.install_for_personalization(ACCESS_AID), "INSTALL perso")
        blocks = gp.dgi_blocks(dgis, limit=40)  # several blocks, to keep DGIs across commands
        for number, block in enumerate(blocks):
            yield from channel.send(gp.store_data(block, number, number == len(blocks) - 1,
                                                  encrypted), f"STORE DATA {number}")
    return body


PERSONALISATION = AccessPersonalisation.for_site(SITE_KEY, CARD, PERMITS)


def test_the_issuer_personalises_the_card_over_the_air():
    band = make_band(TRANSIT)
    issue(band, lambda c: store(to_dgis(PERSONALISATION, c.encrypt_key), install=True)(c))
    assert band.se.entry(ACCESS_AID).lifecycle == PERSONALIZED
    assert not [k for k in cells(band) if "/perso/" in k]
    assert applet(band).permissions() == sorted(PERMITS, key=lambda p: p.door_id)
    assert tap(band, door()).card_id == CARD


def test_the_issuer_replaces_the_permissions_and_re_arms_the_tries():
    band = access_band()
    band.power_on()
    assert [wrong_proof(band) for _ in range(3)][-1] == 0x63C0
    new = (Permission(LAB, H("20260101"), H("20261231")),)
    issue(band, store(update_dgis(AccessUpdate(new, tries=5)), encrypted=False))
    assert applet(band).tries_left() == 5
    assert tap(band, door(LAB)).permission == new[0]
    assert refusal(band, door(FRONT)) == "no access at this door"


@pytest.mark.parametrize("dgi", [CARD_ID, KEY])
def test_card_id_and_key_are_fixed_once_personalised(dgi):
    band = access_band()
    before = cells(band)
    with pytest.raises(CardProtocolError) as refused:
        issue(band, lambda c: store([(dgi, c.encrypt_key(bytes(16)) if dgi == KEY else bytes(8))])(c))
    assert refused.value.sw == SW.CONDITIONS_NOT_SATISFIED
    assert cells(band) == before


def test_incomplete_personalisation_is_refused_and_leaves_the_card_blank():
    band = make_band(TRANSIT)
    dgis = [d for d in to_dgis(PERSONALISATION, lambda key: key) if d[0] != TRIES]
    with pytest.raises(CardProtocolError) as refused:
        issue(band, lambda c: store([(d, c.encrypt_key(v) if d == KEY else v) for d, v in dgis],
                                    install=True)(c))
    assert refused.value.sw == SW.WRONG_DATA
    assert band.se.entry(ACCESS_AID).lifecycle != PERSONALIZED
    assert not applet(band).personalised


def test_the_key_never_travels_in_clear():
    band = make_band(TRANSIT)
    with pytest.raises(CardProtocolError) as refused:
        issue(band, store(to_dgis(PERSONALISATION, lambda key: key), install=True, encrypted=False))
    assert refused.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert not applet(band).personalised


@pytest.mark.parametrize("dgis", [
    {CARD_ID: CARD[:7], TRIES: b"\x03", PERMISSIONS: b"", KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x00", PERMISSIONS: b"", KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x10", PERMISSIONS: b"", KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: bytes(11), KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: PERMISSION.build(PERMITS[0]) * 2, KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: H("00000101" "20261301" "20361231"), KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: H("00000101" "20361231" "20260101"), KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: H("00000101" "2026AA01" "20361231"), KEY: bytes(16)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: b"", KEY: bytes(24)},
    {CARD_ID: CARD, TRIES: b"\x03", PERMISSIONS: b"", KEY: bytes(16), 0x0104: b""},
    {CARD_ID: CARD, TRIES: b"\x03", KEY: bytes(16)},
])
def test_personalisation_data_is_checked(dgis):
    with pytest.raises(ValueError):
        from_dgis(dgis)


def test_dgis_round_trip():
    assert from_dgis(dict(to_dgis(PERSONALISATION, lambda key: key))) == PERSONALISATION


def test_the_card_is_installable_from_the_bands_load_files():
    assert loadfiles.module_class(ACCESS_FILE.aid, ACCESS_AID) == loadfiles.ACCESS_CARD
    assert ACCESS_AID.startswith(H("F04B4F414C41"))


# -- separation from the other cards --------------------------------------------------------------------


def test_the_purse_and_the_access_card_keep_separate_state():
    band = access_band()
    purse_prefix = f"app/{TRANSIT.aid.hex().upper()}/"
    everything = band.se.store.snapshot()
    assert cells(band) and cells(band, purse_prefix)
    assert not set(cells(band)) & set(cells(band, purse_prefix))
    assert all(k.startswith(("app/", "registry", "card_state")) for k in everything)

    purse_before = cells(band, purse_prefix)
    tap(band, door())
    assert cells(band, purse_prefix) == purse_before

    access_before = cells(band)
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    assert load(band, 500).sw == SW.OK
    assert cells(band) == access_before


def test_each_card_answers_only_its_own_commands():
    band = access_band()
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    assert send(band, challenge(AuthCommand(FRONT, bytes(16)))).sw == SW.INS_NOT_SUPPORTED
    send(band, select())
    assert send(band, pboc.get_balance()).sw == SW.INS_NOT_SUPPORTED
    assert send(band, pboc.read_binary(pboc.SFI_ISSUER)).sw == SW.INS_NOT_SUPPORTED


# -- power cut at every write of a grant ----------------------------------------------------------------


def _prepared(wrong_first: bool, full_log: bool) -> tuple[Band, bytes]:
    """A band with a session open on the access card, and the door proof that finishes it."""
    band = access_band()
    if full_log:
        for minute in range(LOG_ENTRIES):
            tap(band, door(now=NOW.replace(hour=7, minute=minute), seed=minute))
    band.power_on()
    if wrong_first:
        assert wrong_proof(band) == 0x63C2
    flow = door().tap()
    command = next(flow)
    while command.ins != INS_PROOF:
        command = flow.send(ResponseAPDU.parse(band.transmit(command.encode())))
    return band, command.encode()


@pytest.mark.parametrize(("wrong_first", "full_log"), [(False, False), (True, False), (False, True)])
def test_every_tear_of_a_grant_leaves_the_old_or_the_new_card(wrong_first, full_log):
    band, final = _prepared(wrong_first, full_log)
    log_before = applet(band).entry_log()
    band.transmit(final)
    log_after = applet(band).entry_log()
    torn = list(tear_at_every_write(lambda: _prepared(wrong_first, full_log)))
    assert len(torn) >= (8 if wrong_first else 6), "log record, log head (and tries), journalled"
    for outcome, card in torn:
        assert applet(card).entry_log() == (log_after if outcome == "after" else log_before)
        assert applet(card).tries_left() in (2, 3)


@pytest.mark.parametrize("k", range(4))
def test_a_tear_during_a_wrong_proof_costs_one_try_or_none(k):
    band = access_band()
    band.power_on()
    send(band, select())
    send(band, challenge(AuthCommand(FRONT, bytes(16))))
    band.se.store.tear_after = band.se.store.writes + k
    with pytest.raises(PowerLoss):
        band.transmit(proof(ProofCommand(*date_time(), bytes(8))).encode())
    band.se.store.tear_after = None
    band.power_on()
    assert applet(band).tries_left() in (2, 3)


# -- fuzz ---------------------------------------------------------------------------------------------------


_TEMPLATE = access_band()
tap(_TEMPLATE, door())
_IMAGE = _TEMPLATE.to_image()
_SELECT = select().encode()

_data = (st.sampled_from([b"", bytes(20), bytes(15), FRONT.to_bytes(4) + bytes(16),
                          H("20261123083000") + bytes(8), ACCESS_AID, TRANSIT.aid])
         | st.binary(min_size=15, max_size=15) | st.binary(min_size=20, max_size=20)
         | st.binary(max_size=40))
structured = st.builds(
    lambda cla, ins, p1, p2, data, ne: CommandAPDU(cla, ins, p1, p2, data, ne=ne).encode(),
    st.sampled_from([0x80, 0x00, 0x84]) | st.integers(0, 255),
    st.sampled_from([0x88, 0x82, 0xA4, 0xB0, 0xB2, 0xE2, 0x5C]) | st.integers(0, 255),
    st.sampled_from([0x00, 0x04]) | st.integers(0, 255),
    st.sampled_from([0x00, 0x02]) | st.integers(0, 255),
    _data,
    st.none() | st.integers(1, 300),
)
_auth = st.builds(lambda rnd, door_id, tail: [
    challenge(AuthCommand(door_id, rnd)).encode(),
    CommandAPDU(0x80, INS_PROOF, 0, 0, H("20261123083000") + tail).encode()],
    st.binary(min_size=16, max_size=16), st.sampled_from([FRONT, GARAGE, LAB]),
    st.binary(min_size=8, max_size=8))
sequences = st.lists(st.one_of(structured.map(lambda c: [c]), _auth, st.just([_SELECT]),
                               st.binary(max_size=24).map(lambda c: [c])), max_size=10)


def _changed(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


@given(sequences)
def test_no_command_sequence_breaks_the_card_or_opens_a_door(groups):
    """Whatever arrives, a valid SW and no applet bug; a refusal by the access card changes
    nothing but a try spent on a wrong door cryptogram (63Cx); without the site key the
    access card's memory changes in no other way at all (no grant, no log entry)."""
    band = Band.from_image(_IMAGE, seeded(3))
    log, tries = applet(band).entry_log(), PREFIX + "tries"
    for raw in [_SELECT, *(c for group in groups for c in group)]:
        was_access = isinstance(band.se.selected, AccessCard)
        before = band.se.store.snapshot()
        response = ResponseAPDU.parse(band.transmit(raw))
        after = band.se.store.snapshot()
        assert is_valid(response.sw), f"{raw.hex()} -> {response.sw:04X}"
        assert band.se.internal_errors == 0, f"applet bug on {raw.hex()}"
        if response.sw & 0xFFF0 == 0x63C0:
            assert _changed(before, after) == {tries}
            assert after[tries][0] == before[tries][0] - 1 == response.sw & 0x0F
        else:
            assert not {k for k in _changed(before, after) if k.startswith(PREFIX)}, raw.hex()
            if response.sw != SW.OK and was_access:
                assert after == before, f"{raw.hex()} -> {response.sw:04X} changed state"
    assert applet(band).entry_log() == log
