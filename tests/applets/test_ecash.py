"""The e-cash card and the QuickPass POS: offline approvals with fDDA, online, EMV-only
terminals, the issuer's EC top-up script, tearing and fuzzing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.emv import crypto, dol
from applets.emv.ecash import EcashCard, EcashPersonalisation
from applets.emv.records import CDOL1, ECASH_AID, LOG_ENTRY, PDOL, PPSE_AID, amount, fen
from applets.gp.domain import ISD_AID
from applets.gp.keys import KeySet
from applets.sw import SW
from issuer import ecash, gp
from issuer.emv_pki import DemoPki
from reader.emv_ca import CA_KEYS
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import run
from reader.pos import EMV_TTQ, Pos, Receipt
from reader.transport import in_field
from tests.conftest import Clock, make_band, seeded, tear_at_every_write
from tests.support.gp import (
    OPERATOR_KEYS,
    SD_LOAD_FILE,
    SD_MODULE,
    SSD_AID,
    on,
    sender,
    session,
)
from wallet.band import Band

BALANCE = 10_000
QPBOC_ONLINE = bytes.fromhex("36800000")  # qPBOC, and a cryptogram online required


@pytest.fixture(scope="module")
def personalisation() -> EcashPersonalisation:
    profile = ecash.profile_for(ecash.pan_for(1), "Test Rider", date(2026, 1, 1))
    return ecash.personalisation(profile, DemoPki.load(), balance=BALANCE)


def ecash_band(data: EcashPersonalisation, seed: int = 7) -> Band:
    band = make_band(seed=seed)
    band.add_ecash(data)
    return band


def card(band: Band) -> EcashCard:
    applet = band.se.applet(ECASH_AID)
    assert isinstance(applet, EcashCard)
    return applet


def pay(band: Band, fen_amount: int, **pos_options: Any) -> Receipt:
    pos = Pos("Canteen No.2", Clock(), seeded(3), **pos_options)
    with in_field(band) as link:
        return run(pos.purchase(fen_amount), link)


def send(band: Band, apdu: CommandAPDU) -> ResponseAPDU:
    return ResponseAPDU.parse(band.transmit(apdu.encode()))


def test_an_offline_purchase_is_approved_by_fdda_and_logged(personalisation):
    band = ecash_band(personalisation)
    receipt = pay(band, 1234)
    assert receipt.offline and receipt.balance == BALANCE - 1234
    assert receipt.masked_pan.startswith("622588") and "*" in receipt.masked_pan
    assert card(band).balance() == BALANCE - 1234
    band.power_on()
    send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
    got = send(band, CommandAPDU(0x80, 0xCA, 0x9F, 0x79, ne=256))
    assert fen(tlv.find(got.data, 0x9F79) or b"") == BALANCE - 1234
    log = send(band, CommandAPDU(0x00, 0xB2, 1, 0x0B << 3 | 4, ne=256))
    entry = LOG_ENTRY.parse(log.data)
    assert fen(entry.amount) == 1234 and entry.merchant.rstrip(b"\0") == b"Canteen No.2"


def test_the_issuer_verifies_the_tc_of_an_offline_purchase_and_refuses_a_forged_one(
        personalisation):
    purchase = pay(ecash_band(personalisation), 500).purchase
    assert purchase.cid == 0x40 and ecash.verify_cryptogram(purchase)
    inflated = replace(purchase, data={**purchase.data, 0x9F02: amount(5000)})
    assert not ecash.verify_cryptogram(inflated)


def test_above_the_ec_balance_goes_online_and_the_issuer_checks_the_arqc(personalisation):
    band = ecash_band(personalisation)
    with pytest.raises(TransactionRefused, match="online"):
        pay(band, BALANCE + 1)
    seen = []

    def acquirer(request):
        seen.append(request)
        return ecash.authorise(request)

    receipt = pay(band, BALANCE + 1, acquirer=acquirer)
    assert not receipt.offline and card(band).balance() == BALANCE, "online: EC untouched"
    assert len(seen) == 1
    forged = replace(seen[0], cryptogram=bytes(8))
    assert not ecash.verify_cryptogram(forged)


def test_above_the_single_transaction_limit_goes_online(personalisation):
    band = ecash_band(replace(personalisation, single_limit=1000))
    with pytest.raises(TransactionRefused, match="online"):
        pay(band, 1001)
    assert pay(band, 1000).offline


def test_a_terminal_that_does_not_trust_the_ca_refuses_the_offline_approval(personalisation):
    band = ecash_band(personalisation)
    with pytest.raises(TransactionRefused, match="card authentication failed"):
        pay(band, 100, ca_keys={})
    other = DemoPki.load().issuer_public  # a key, but not the CA's
    with pytest.raises(TransactionRefused, match="card authentication failed"):
        pay(band, 100, ca_keys={key: other for key in CA_KEYS})


def test_an_emv_only_terminal_reads_the_card_and_goes_online(personalisation):
    band = ecash_band(personalisation)
    receipt = pay(band, 250, ttq=EMV_TTQ, acquirer=ecash.authorise)
    assert receipt.pan == personalisation.profile.pan and not receipt.offline
    assert card(band).balance() == BALANCE
    band.power_on()  # the card heard the issuer's ARPC: its last issuer-authenticated ATC moved
    send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
    last = send(band, CommandAPDU(0x80, 0xCA, 0x9F, 0x13, ne=256)).data
    assert int.from_bytes(tlv.find(last, 0x9F13) or b"") == receipt.purchase.atc
    with pytest.raises(TransactionRefused, match="did not accept"):
        pay(band, 250, ttq=EMV_TTQ, acquirer=lambda purchase: bytes(8) + b"00")


def test_the_ppse_lists_the_bank_card_only(personalisation):
    from issuer.products import TRANSIT  # noqa: PLC0415

    band = make_band(TRANSIT)
    band.add_ecash(personalisation)
    band.power_on()
    fci = send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, PPSE_AID, ne=256)).data
    directory = tlv.find(fci, 0xBF0C) or b""
    aids = [tlv.find(entry.value, 0x4F) for entry in tlv.iterate(directory)]
    assert aids == [ECASH_AID]


def top_up(band: Band, new_balance: int, mac_ok: bool = True) -> ResponseAPDU:
    """The issuer's EC top-up script, run directly: ARQC, ARPC, PUT DATA 9F79 with its MAC."""
    band.power_on()
    send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
    data = dol.build(PDOL, {0x9F66: QPBOC_ONLINE, 0x5F2A: bytes.fromhex("0156"),
                            0x9F37: bytes(4)})
    gpo = send(band, CommandAPDU(0x80, 0xA8, 0, 0, tlv.encode(0x83, data), ne=256))
    fields = {item.tag: item.value for item in tlv.iterate(tlv.decode(gpo.data)[0].value)}
    assert fields[0x9F27] == b"\x80"
    atc, arqc = int.from_bytes(fields[0x9F36]), fields[0x9F26]
    pan = ecash.pan_for(1)  # the bank knows the PAN it issued
    ac_key = crypto.session_key(crypto.icc_master_key(ecash.AC_MASTER, pan), atc)
    arpc = crypto.arpc(ac_key, arqc, b"00")
    assert send(band, CommandAPDU(0x00, 0x82, 0, 0, arpc + b"00")).sw == 0x9000
    mac_key = crypto.session_key(crypto.icc_master_key(ecash.MAC_MASTER, pan), atc)
    value = amount(new_balance)
    mac = crypto.script_mac(mac_key, bytes.fromhex("04DA9F790A") + atc.to_bytes(2) + arqc + value)
    if not mac_ok:
        mac = bytes(4)
    return send(band, CommandAPDU(0x04, 0xDA, 0x9F, 0x79, value + mac))


def test_the_issuer_tops_up_the_ec_balance_by_script(personalisation):
    band = ecash_band(personalisation)
    assert top_up(band, 30_000).sw == 0x9000
    assert card(band).balance() == 30_000
    assert top_up(band, 40_000, mac_ok=False).sw == 0x6988
    assert card(band).balance() == 30_000
    assert top_up(band, 100_001).sw == 0x6A80, "above the EC balance limit"


def test_a_script_without_the_issuers_arpc_is_refused(personalisation):
    band = ecash_band(personalisation)
    band.power_on()
    send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
    put = send(band, CommandAPDU(0x04, 0xDA, 0x9F, 0x79, amount(99_999) + bytes(4)))
    assert put.sw == 0x6982 and card(band).balance() == BALANCE


def test_every_tear_of_an_offline_approval_leaves_the_old_or_the_new_card(personalisation):
    def prepared() -> tuple[Band, bytes]:
        """A band selected by a POS, and the GPO that spends 7 yuan offline."""
        band = ecash_band(personalisation)
        band.power_on()
        send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
        data = dol.build(PDOL, {0x9F66: bytes.fromhex("36000000"), 0x9F02: amount(700),
                                0x5F2A: bytes.fromhex("0156"), 0x9F37: bytes(4)})
        return band, CommandAPDU(0x80, 0xA8, 0, 0, tlv.encode(0x83, data), ne=256).encode()

    for outcome, torn in tear_at_every_write(prepared):
        spent = BALANCE - card(torn).balance()
        assert spent == (700 if outcome == "after" else 0)


RANDOM_COMMAND = st.tuples(st.sampled_from([0x00, 0x04, 0x80, 0x84]),
                           st.one_of(st.sampled_from([0xA8, 0xB2, 0xAE, 0x82, 0xCA, 0xDA]),
                                     st.integers(0, 255)),
                           st.one_of(st.just(0), st.integers(0, 255)),
                           st.one_of(st.just(0), st.integers(0, 255)), st.binary(max_size=80))
#: GET PROCESSING OPTIONS and GENERATE AC of the right length with any content.
TERMINAL_DATA = st.fixed_dictionaries({
    0x9F66: st.binary(min_size=4, max_size=4), 0x9F02: st.integers(0, 20_000).map(amount),
    0x9F03: st.sampled_from([bytes(6), amount(1)]),
    0x5F2A: st.sampled_from([bytes.fromhex("0156"), bytes.fromhex("0840")]),
    0x9F37: st.binary(min_size=4, max_size=4)})
SHAPED_COMMAND = st.one_of(
    st.binary(max_size=70).map(lambda data: (0x80, 0xA8, 0, 0, data)),
    st.binary(min_size=dol.size(PDOL), max_size=dol.size(PDOL)).map(
        lambda data: (0x80, 0xA8, 0, 0, tlv.encode(0x83, data))),
    TERMINAL_DATA.map(lambda values: (0x80, 0xA8, 0, 0, tlv.encode(0x83, dol.build(PDOL, values)))),
    st.tuples(st.sampled_from([0x00, 0x40, 0x80]), TERMINAL_DATA).map(
        lambda pair: (0x80, 0xAE, pair[0], 0, dol.build(CDOL1, pair[1]))),
    st.tuples(st.sampled_from([0x00, 0x40, 0x80]),
              st.binary(min_size=dol.size(CDOL1), max_size=dol.size(CDOL1))).map(
        lambda pair: (0x80, 0xAE, pair[0], 0, pair[1])),
    st.builds(lambda data: (0x00, 0xA4, 0x04, 0x00, data), st.just(ECASH_AID)))


@given(st.lists(st.one_of(RANDOM_COMMAND, SHAPED_COMMAND), max_size=12))
def test_no_command_sequence_breaks_the_card_or_creates_money(personalisation, commands):
    band = ecash_band(personalisation)
    band.power_on()
    send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
    for cla, ins, p1, p2, data in commands:
        if ins & 0xF0 in (0x60, 0x90):
            continue
        band.transmit(CommandAPDU(cla, ins, p1, p2, data).encode())
    assert band.se.internal_errors == 0
    spent = 0
    log = band.se.store.get(f"{card(band).context.prefix}/log") or b""
    for i in range(0, len(log), LOG_ENTRY.size):
        spent += fen(LOG_ENTRY.parse(log[i:i + LOG_ENTRY.size]).amount)
    assert card(band).balance() + spent == BALANCE, "money only moves as logged purchases"


def test_the_transit_operator_opens_nothing_of_the_bank_card(personalisation):
    """The operator's domain manages its own card only, and its keys make no valid script."""
    band = ecash_band(personalisation, seed=11)
    on(band, session(ISD_AID, KeySet.test_keys(), lambda c: c.send(
        gp.install(SD_LOAD_FILE, SD_MODULE, SSD_AID, b"\x80\x40\x00"), "INSTALL SSD")))
    on(band, session(SSD_AID, KeySet.test_keys(), lambda c: c.send(gp.put_key(c, OPERATOR_KEYS),
                                                                   "PUT KEY")))
    for command in (gp.install_for_personalization(ECASH_AID), gp.set_status(ECASH_AID, True),
                    gp.delete(ECASH_AID)):
        with pytest.raises(CardProtocolError) as refused:
            on(band, session(SSD_AID, OPERATOR_KEYS, sender(command)))
        assert refused.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    band.power_on()
    send(band, CommandAPDU(0x00, 0xA4, 0x04, 0x00, ECASH_AID, ne=256))
    init_load = CommandAPDU(0x80, 0x50, 0x00, 0x02, bytes(11), ne=16)  # a purse's command
    assert send(band, init_load).sw == SW.INS_NOT_SUPPORTED
    assert card(band).balance() == BALANCE
