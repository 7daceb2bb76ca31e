"""A QuickPass POS: one contactless purchase from a band's e-cash card, as a terminal flow.

The flow is the reader's half of :mod:`applets.emv.ecash`:

1. SELECT the PPSE; take the directory entry with the best priority.
2. SELECT it; build the PDOL data (TTQ, amount, currency, date, our
   unpredictable number ...) and send GET PROCESSING OPTIONS.
3. qPBOC answer (77): read the records the AFL names, and for a TC verify
   the fDDA signature: the CA key the terminal trusts (RID, index 8F) opens
   the issuer certificate, that opens the ICC certificate (which covers the
   signed records and the AIP), and the ICC key checks the signature over our
   own unpredictable number. An ARQC goes to the acquirer if the POS has an
   online link, else the purchase is declined; an AAC is declined.
4. EMV answer (80, a card or reader without qPBOC): read the records, then
   GENERATE AC. Without offline data authentication the terminal asks for
   an ARQC, so this path is always online, and the card, still in the field,
   gets the issuer's ARPC (EXTERNAL AUTHENTICATE).

The result is a receipt and, for an approval, the record the acquirer
clears (its TC proves the purchase to the issuer).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from applets import bcd, tlv
from applets.apdu import CommandAPDU
from applets.emv import dol, oda
from applets.emv.records import (
    ECASH_AID,
    LOG_RECORDS,
    LOG_SFI,
    PPSE_AID,
    afl_entries,
    amount,
    fen,
)
from applets.iso7816 import CLA_PROPRIETARY, Ins, external_authenticate, get_data, read_record
from applets.selection import select
from applets.sw import SW
from reader.clock import Clock, local
from reader.emv_ca import CA_KEYS
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import Flow, exchange, expect
from reader.record import EcashPurchase

Rng = Callable[[int], bytes]

#: TTQ: qPBOC and EMV contact supported, online capable, no CVM below the limit.
QPBOC_TTQ = bytes.fromhex("36000000")
EMV_TTQ = bytes.fromhex("16000000")  # a reader that does not know qPBOC
CID_AAC, CID_TC, CID_ARQC = 0x00, 0x40, 0x80
PURCHASE = 0x00
REFUSALS: dict[int, str] = {SW.FILE_NOT_FOUND: "no QuickPass card on this band"}


#: The acquirer's answer to an ARQC: the issuer's ARPC ‖ ARC when it approves, None when not.
Acquirer = Callable[[EcashPurchase], bytes | None]


@dataclass(frozen=True, slots=True)
class Receipt:
    merchant: str
    amount: int
    pan: str
    label: str
    offline: bool  # approved by the card itself (TC with fDDA) rather than by the issuer
    balance: int | None  # the EC balance left, when the card says
    purchase: EcashPurchase

    @property
    def masked_pan(self) -> str:
        return self.pan[:6] + "*" * (len(self.pan) - 10) + self.pan[-4:]


class Pos:
    def __init__(self, merchant: str, clock: Clock, rng: Rng = os.urandom,
                 ca_keys: Mapping[tuple[bytes, int], oda.PublicKey] = CA_KEYS,
                 acquirer: Acquirer | None = None, ttq: bytes = QPBOC_TTQ,
                 country: bytes = bytes.fromhex("0156"),
                 currency: bytes = bytes.fromhex("0156")) -> None:
        self.merchant = merchant
        self.clock = clock
        self.rng = rng
        self.ca_keys = ca_keys
        self.acquirer = acquirer
        self.ttq = ttq
        self.country = country
        self.currency = currency

    def purchase(self, fen_amount: int) -> Flow[Receipt]:
        """One tap: the receipt of an approved purchase, or TransactionRefused."""
        if fen_amount <= 0:
            raise ValueError("a purchase amount is a positive number of fen")
        aid, label = yield from self._choose_application()
        fci = yield from exchange(select(aid), "SELECT", REFUSALS)
        pdol = _find(fci, 0x9F38, "SELECT")
        now = local(self.clock())
        values = {0x9F66: self.ttq, 0x9F02: amount(fen_amount), 0x9F03: bytes(6),
                  0x9F1A: self.country, 0x95: bytes(5), 0x5F2A: self.currency,
                  0x9A: bcd.encode(now.strftime("%y%m%d")), 0x9C: bytes((PURCHASE,)),
                  0x9F37: self.rng(4), 0x9F21: bcd.encode(now.strftime("%H%M%S")),
                  0x9F4E: self.merchant.encode()[:20]}
        try:
            pdol_data = dol.build(pdol, values)
        except dol.DolError as error:
            raise CardProtocolError("SELECT", SW.OK, f"PDOL: {error}") from error
        answer = yield from exchange(get_processing_options(pdol_data), "GET PROCESSING OPTIONS")
        first = _tlvs(answer, "GET PROCESSING OPTIONS")
        contact_stays = first.tag == 0x80  # EMV: AIP ‖ AFL, and the card waits for the issuer
        if contact_stays:
            if len(first.value) < 6:
                raise CardProtocolError("GET PROCESSING OPTIONS", SW.OK, "format 1 too short")
            card = yield from _read_records(first.value[2:])
            result = yield from self._generate_ac(card, values)
        else:
            result = _fields(first.value)
            card = yield from _read_records(_need(result, 0x94, "GET PROCESSING OPTIONS"))
        receipt, issuer_answer = self._decide(aid, label, card, result, values, fen_amount, now)
        if contact_stays and issuer_answer is not None:
            # Issuer authentication: only a card still in the field hears the ARPC (a qPBOC card
            # has left by the time the issuer answers).
            response = yield external_authenticate(issuer_answer)
            if response.sw != SW.OK:
                raise TransactionRefused("the card did not accept the issuer's answer")
        return receipt

    def _choose_application(self) -> Flow[tuple[bytes, str]]:
        fci = yield from exchange(select(PPSE_AID), "SELECT PPSE", REFUSALS)
        directory = _find(fci, 0xBF0C, "SELECT PPSE")
        best: tuple[int, bytes, str] | None = None
        try:
            for entry in tlv.iterate(directory):
                if entry.tag != 0x61:
                    continue
                fields = _fields(entry.value)
                priority = fields.get(0x87, b"\x0f")[0] & 0x0F
                candidate = (priority, fields[0x4F], fields.get(0x50, b"").decode(errors="replace"))
                if best is None or candidate[0] < best[0]:
                    best = candidate
        except (tlv.TLVError, KeyError, IndexError) as error:
            raise CardProtocolError("SELECT PPSE", SW.OK, f"directory: {error!r}") from error
        if best is None:
            raise TransactionRefused("no QuickPass card on this band")
        return best[1], best[2]

    def _generate_ac(self, card: _CardData, values: dict[int, bytes]) -> Flow[dict[int, bytes]]:
        """EMV path: no offline data authentication was done, so the terminal asks for an ARQC."""
        cdol1 = _need(card.tags, 0x8C, "READ RECORD")
        try:
            data = dol.build(cdol1, values)
        except dol.DolError as error:
            raise CardProtocolError("READ RECORD", SW.OK, f"CDOL1: {error}") from error
        command = CommandAPDU(CLA_PROPRIETARY, Ins.GENERATE_AC, CID_ARQC, 0x00, data, ne=256)
        answer = yield from exchange(command, "GENERATE AC")
        return _fields(_tlvs(answer, "GENERATE AC").value)

    def _decide(self, aid: bytes, label: str, card: _CardData, result: dict[int, bytes],
                values: dict[int, bytes], fen_amount: int,
                now: datetime) -> tuple[Receipt, bytes | None]:
        """The receipt, and for an online approval the issuer's ARPC ‖ ARC."""
        try:
            cid = _need(result, 0x9F27, "cryptogram")[0] & 0xC0
            pan = bcd_digits(_need(card.tags, 0x5A, "READ RECORD"))
            psn = int(bcd.decode(card.tags.get(0x5F34, b"\x00")))
        except (IndexError, ValueError) as error:
            raise CardProtocolError("READ RECORD", SW.OK, f"malformed card data: {error}") from error
        atc = int.from_bytes(_need(result, 0x9F36, "cryptogram"))
        cryptogram = _need(result, 0x9F26, "cryptogram")
        iad = result.get(0x9F10, b"")
        purchase = EcashPurchase(pan, psn, fen_amount, atc, cryptogram, cid, iad, values,
                                 self.merchant)
        issuer_answer = None
        if cid == CID_AAC:
            raise TransactionRefused("declined by the card")
        if cid == CID_TC:
            self._authenticate(aid, card, result, values, pan, now)
        elif self.acquirer is None:
            raise TransactionRefused("the card asks for online authorisation, and this POS is "
                                     "offline")
        else:
            issuer_answer = self.acquirer(purchase)
            if issuer_answer is None:
                raise TransactionRefused("declined by the issuer")
        left = result.get(0x9F5D)
        try:
            balance = fen(left) if left and cid == CID_TC else None
        except ValueError as error:
            raise CardProtocolError("GET PROCESSING OPTIONS", SW.OK, f"9F5D: {error}") from error
        return (Receipt(self.merchant, fen_amount, pan, label, cid == CID_TC, balance, purchase),
                issuer_answer)

    def _authenticate(self, aid: bytes, card: _CardData, result: dict[int, bytes],
                      values: dict[int, bytes], pan: str, now: datetime) -> None:
        """fDDA: refuse an offline approval the card cannot prove with its issuer's key."""
        try:
            index = _need(card.tags, 0x8F, "READ RECORD")[0]
            ca = self.ca_keys.get((aid[:5], index))
            if ca is None:
                raise oda.OdaError(f"no CA public key {aid[:5].hex().upper()} {index:02X}")
            issuer = oda.recover_issuer_key(ca, _certificate(card.tags, 0x90, 0x92, 0x9F32),
                                            pan, now.date())
            static = card.static + (result[0x82] if b"\x82" in card.tags.get(0x9F4A, b"") else b"")
            icc = oda.recover_icc_key(issuer, _certificate(card.tags, 0x9F46, 0x9F48, 0x9F47),
                                      pan, static, now.date())
            terminal = oda.fdda_terminal_data(values[0x9F37], values[0x9F02], values[0x5F2A],
                                              _need(result, 0x9F69, "GET PROCESSING OPTIONS"))
            oda.verify_dynamic_data(icc, _need(result, 0x9F4B, "GET PROCESSING OPTIONS"),
                                    terminal)
        except (oda.OdaError, KeyError, CardProtocolError) as error:
            raise TransactionRefused(f"card authentication failed: {error}") from error


@dataclass(frozen=True, slots=True)
class LogLine:
    """One record of the e-cash card's transaction log, as its log format (9F4F) names it."""

    when: datetime
    amount: int
    merchant: str
    atc: int


def read_log() -> Flow[tuple[int, list[LogLine]]]:
    """The e-cash balance and transaction log, read as any reader app reads a PBOC card: GET
    DATA of the balance and the log format, then READ RECORD of the log file until it ends."""
    yield from exchange(select(ECASH_AID), "SELECT", REFUSALS)
    balance = yield from exchange(get_data(0x9F79), "GET DATA 9F79")
    fmt = yield from exchange(get_data(0x9F4F), "GET DATA 9F4F")
    log_format = _find(fmt, 0x9F4F, "GET DATA 9F4F")
    lines = []
    for number in range(1, LOG_RECORDS + 1):
        response = yield read_record(LOG_SFI, number)
        if response.sw == SW.RECORD_NOT_FOUND:
            break
        record = expect(response, "READ RECORD (log)")
        try:
            values = dol.split(log_format, record)
            when = datetime.strptime(values[0x9A].hex() + values[0x9F21].hex(), "%y%m%d%H%M%S")
            lines.append(LogLine(when, fen(values[0x9F02]),
                                 values[0x9F4E].rstrip(b"\0").decode(errors="replace"),
                                 int.from_bytes(values[0x9F36])))
        except (dol.DolError, KeyError, ValueError) as error:
            raise CardProtocolError("READ RECORD (log)", SW.OK, str(error)) from error
    return fen(_find(balance, 0x9F79, "GET DATA 9F79")), lines


@dataclass(frozen=True, slots=True)
class _CardData:
    tags: dict[int, bytes]  # every primitive data object of the records
    static: bytes  # the records' data the ODA covers, in AFL order


def _read_records(afl: bytes) -> Flow[_CardData]:
    try:
        entries = afl_entries(afl)
    except ValueError as error:
        raise CardProtocolError("GET PROCESSING OPTIONS", SW.OK, f"AFL: {error}") from error
    tags: dict[int, bytes] = {}
    static = b""
    for entry in entries:
        for number in range(entry.first, entry.last + 1):
            record = yield from exchange(read_record(entry.sfi, number), "READ RECORD")
            template = _tlvs(record, "READ RECORD")
            if template.tag != 0x70:
                raise CardProtocolError("READ RECORD", SW.OK, "not a 70 record template")
            tags.update(_fields(template.value))
            if number - entry.first < entry.signed:
                static += template.value
    return _CardData(tags, static)


def get_processing_options(pdol_data: bytes) -> CommandAPDU:
    """GET PROCESSING OPTIONS with the terminal's data for the card's PDOL."""
    return CommandAPDU(CLA_PROPRIETARY, Ins.GET_PROCESSING_OPTIONS, 0x00, 0x00,
                       tlv.encode(0x83, pdol_data), ne=256)


def _tlvs(data: bytes, step: str) -> tlv.TLV:
    try:
        items = tlv.decode(data)
    except tlv.TLVError as error:
        raise CardProtocolError(step, SW.OK, str(error)) from error
    if not items:
        raise CardProtocolError(step, SW.OK, "no data")
    return items[0]


def _fields(data: bytes) -> dict[int, bytes]:
    """The primitive data objects of a template, by tag."""
    try:
        return {item.tag: item.value for item in tlv.iterate(data)}
    except tlv.TLVError as error:
        raise CardProtocolError("TLV", SW.OK, str(error)) from error


def _find(data: bytes, tag: int, step: str) -> bytes:
    try:
        found = tlv.find(data, tag)
    except tlv.TLVError as error:
        raise CardProtocolError(step, SW.OK, str(error)) from error
    if found is None:
        raise CardProtocolError(step, SW.OK, f"no tag {tag:X}")
    return found


def _need(fields: Mapping[int, bytes], tag: int, step: str) -> bytes:
    if tag not in fields:
        raise CardProtocolError(step, SW.OK, f"the card sent no {tag:X}")
    return fields[tag]


def _certificate(tags: Mapping[int, bytes], certificate: int, remainder: int,
                 exponent: int) -> oda.Certificate:
    return oda.Certificate(tags[certificate], tags.get(remainder, b""), tags[exponent])


def bcd_digits(pan: bytes) -> str:
    """The digits of a PAN padded with F; ValueError when it holds anything else."""
    digits = pan.hex().upper().rstrip("F")
    if not digits.isdigit():
        raise ValueError(f"{pan.hex().upper()} is not a PAN")
    return digits

