"""The PBOC 3.0 e-cash application (电子现金) of a UnionPay card, as QuickPass terminals see it.

=====  ====  =======================================  ==========================
CLA    INS   command                                  P1 P2
=====  ====  =======================================  ==========================
00     A4    SELECT (by the runtime): FCI with PDOL   04 00
80     A8    GET PROCESSING OPTIONS (83 PDOL data)    00 00
00     B2    READ RECORD                              record, SFI << 3 | 4
80     AE    GENERATE AC (CDOL1 data)                 40 TC / 80 ARQC / 00 AAC, 00
00     82    EXTERNAL AUTHENTICATE (ARPC ‖ ARC)       00 00
80     CA    GET DATA                                 tag (9F79, 9F77, 9F78, 9F6D,
                                                      9F36, 9F13, 9F4F)
04     DA    PUT DATA, issuer script with MAC         9F79, 9F77, 9F78, 9F6D
=====  ====  =======================================  ==========================

Two paths, chosen by the reader's Terminal Transaction Qualifiers (9F66):

- **qPBOC** (TTQ byte 1 bit 6): GET PROCESSING OPTIONS decides at once. A
  purchase the EC balance (9F79) and the single-transaction limit (9F78)
  cover is approved offline: balance down, ATC up and a log record, in one
  commit, and the answer carries a TC and the fDDA signature (9F4B) over the
  reader's unpredictable number, amount and currency and the card's own
  (9F69). Anything else asks for online authorisation (ARQC), or is declined
  (AAC) by an offline-only reader.
- **EMV** (a reader without qPBOC): GET PROCESSING OPTIONS returns AIP and
  AFL; the reader reads the records and sends GENERATE AC. A TC request the
  EC balance covers is approved offline as above (without fDDA); otherwise
  ARQC, or AAC when the reader asked for one.

Money enters only by issuer script: after an ARQC of this session,
EXTERNAL AUTHENTICATE with the issuer's ARPC, then PUT DATA 9F79 with the new
balance under the script MAC (the EC top-up, 圈存). Sessions live in RAM: a
tear or a reselection ends them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from construct import Bytes, Int8ub, Int16ub, Int32ub, Struct
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from applets import tlv
from applets.apdu import CommandAPDU
from applets.emv import crypto, dol, oda
from applets.emv.records import (
    AFL,
    AIP,
    CDOL1,
    CVR_AAC,
    CVR_ARQC,
    CVR_TC,
    LOG_ENTRY,
    LOG_FORMAT,
    LOG_RECORDS,
    LOG_SFI,
    PDOL,
    LogEntry,
    Profile,
    ac_input,
    amount,
    fen,
    issuer_data,
    records,
)
from applets.errors import CardError
from applets.iso7816 import CLA_ISO, CLA_ISO_SM, CLA_PROPRIETARY, Ins, RecordReference, data_tag
from applets.layout import Layout, LayoutError
from applets.runtime import Applet, AppletContext
from applets.selection import fci
from applets.sw import SW

#: TTQ byte 1: the reader supports qPBOC; it is offline only. Byte 2: it wants a cryptogram online.
TTQ_QPBOC, TTQ_OFFLINE_ONLY, TTQ_ONLINE_REQUIRED = 0x20, 0x08, 0x80
CID_AAC, CID_TC, CID_ARQC = 0x00, 0x40, 0x80
FDDA_VERSION = 0x01
ATC_MAX = 0xFFFF
PUTTABLE = (0x9F79, 0x9F77, 0x9F78, 0x9F6D)


@dataclass(frozen=True, slots=True)
class EcashPersonalisation:
    """Everything written into a fresh e-cash instance (the issuer's data preparation)."""

    profile: Profile
    ac_key: bytes  # the card's AC master key (EMV option A from the issuer's master)
    mac_key: bytes  # the card's script MAC master key
    icc_key: bytes  # the card's RSA key, PKCS#8 DER
    ca_index: int
    issuer_certificate: oda.Certificate
    icc_certificate: oda.Certificate
    balance: int = 0
    balance_limit: int = 100_000
    single_limit: int = 50_000
    reset_threshold: int = 0


# -- persistent cells ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Purse:
    balance: int
    atc: int
    last_online_atc: int  # of the last transaction the issuer authenticated (9F13)
    scripts: int  # issuer script commands applied in that transaction


_PURSE = Layout(Struct("balance" / Int32ub, "atc" / Int16ub, "last_online_atc" / Int16ub,
                       "scripts" / Int8ub), _Purse)


@dataclass(frozen=True, slots=True)
class _Limits:
    balance_limit: int
    single_limit: int
    reset_threshold: int
    currency: bytes


_LIMITS = Layout(Struct("balance_limit" / Int32ub, "single_limit" / Int32ub,
                        "reset_threshold" / Int32ub, "currency" / Bytes(2)), _Limits)


# -- the session in RAM ----------------------------------------------------------------------


class _Step(Enum):
    SELECTED = "selected"
    EMV_READY = "emv"  # GPO answered AIP/AFL: GENERATE AC may come
    ONLINE = "online"  # an ARQC is out: EXTERNAL AUTHENTICATE may come
    AUTHENTICATED = "authenticated"  # the issuer proved itself: scripts may run
    DONE = "done"  # the transaction is decided: only reading is left


@dataclass(slots=True)
class _Session:
    step: _Step = _Step.SELECTED
    arqc: bytes = b""
    atc: int = 0


def _terminal_data(wanted: bytes, data: bytes) -> tuple[dict[int, bytes], int]:
    """The terminal's data for a DOL of ours, and the amount it asks for."""
    try:
        values = dol.split(wanted, data)
    except dol.DolError as error:
        raise CardError(SW.WRONG_LENGTH, str(error)) from error
    try:
        return values, fen(values[0x9F02])
    except ValueError as error:
        raise CardError(SW.WRONG_DATA, f"the amount is not BCD: {error}") from error


class EcashCard(Applet):
    def __init__(self, context: AppletContext) -> None:
        super().__init__(context)
        self._session = _Session()
        self._key: rsa.RSAPrivateKey | None = None  # parsed once per power-up, when first used

    # -- cells ------------------------------------------------------------------------------

    def _need(self, name: str) -> bytes:
        value = self._get(name)
        if value is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the application is not personalised")
        return value

    def _purse(self) -> _Purse:
        return _PURSE.parse(self._need("purse"))

    def _limits(self) -> _Limits:
        return _LIMITS.parse(self._need("limits"))

    def balance(self) -> int:
        """The EC balance in fen (for the band's own display)."""
        return self._purse().balance

    def pan_and_expiry(self) -> tuple[str, bytes]:
        """The card's PAN and expiry date (YYMMDD), as its records say, for the band's display."""
        record = tlv.decode(self._need("record/0201"))[0].value
        pan, expiry = tlv.find(record, 0x5A) or b"", tlv.find(record, 0x5F24) or b""
        return pan.hex().upper().rstrip("F"), expiry

    def directory_entry(self) -> tuple[str, int]:
        """(label, priority): what this application lets the PPSE list about it."""
        return self._need("label").decode(), self._need("priority")[0]

    # -- personalisation ---------------------------------------------------------------------

    def personalise(self, data: EcashPersonalisation) -> None:
        if self._get("purse") is not None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the application is personalised")
        if not 0 <= data.balance <= data.balance_limit or data.single_limit > data.balance_limit:
            raise CardError(SW.WRONG_DATA, "the EC balance and limits do not fit together")
        if len(data.ac_key) != 16 or len(data.mac_key) != 16:
            raise CardError(SW.WRONG_DATA, "card master keys have 16 bytes")
        try:  # validated once here, so every power-up can skip the costly check
            key = load_der_private_key(data.icc_key, password=None)
        except ValueError as error:
            raise CardError(SW.WRONG_DATA, f"the ICC key does not load: {error}") from error
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CardError(SW.WRONG_DATA, "the ICC key is not an RSA key")
        for (sfi, number), record in records(data.profile, data.ca_index,
                                             data.issuer_certificate,
                                             data.icc_certificate).items():
            self._put(f"record/{sfi:02X}{number:02X}", record)
        self._put("key/ac", data.ac_key)
        self._put("key/mac", data.mac_key)
        self._put("key/icc", data.icc_key)
        self._put("label", data.profile.label.encode())
        self._put("priority", bytes((data.profile.priority,)))
        self._put("limits", _LIMITS.build(_Limits(data.balance_limit, data.single_limit,
                                                  data.reset_threshold, data.profile.currency)))
        self._put("purse", _PURSE.build(_Purse(data.balance, 0, 0, 0)))
        self._put("log", b"")

    # -- selection -------------------------------------------------------------------------

    def select(self, apdu: CommandAPDU) -> bytes:
        self._session = _Session()
        label = self._need("label")
        return fci(self.aid, tlv.encode(0x50, label), tlv.encode(0x87, self._need("priority")),
                   tlv.encode(0x9F38, PDOL), tlv.encode(0x5F2D, b"zhen"),
                   tlv.constructed(0xBF0C, tlv.encode(0x9F4D, bytes((LOG_SFI, LOG_RECORDS)))))

    def deselect(self) -> None:
        self._session = _Session()

    def process(self, apdu: CommandAPDU) -> bytes:
        handlers: dict[tuple[int, int], Callable[[CommandAPDU], bytes]] = {
            (CLA_PROPRIETARY, Ins.GET_PROCESSING_OPTIONS): self._get_processing_options,
            (CLA_ISO, Ins.READ_RECORD): self._read_record,
            (CLA_PROPRIETARY, Ins.GENERATE_AC): self._generate_ac,
            (CLA_ISO, Ins.EXTERNAL_AUTHENTICATE): self._external_authenticate,
            (CLA_PROPRIETARY, Ins.GET_DATA): self._get_data,
            (CLA_ISO_SM, Ins.PUT_DATA): self._put_data}
        handler = handlers.get((apdu.cla, apdu.ins))
        if handler is None:
            known = {ins for _, ins in handlers}
            raise CardError(SW.CLA_NOT_SUPPORTED if apdu.ins in known else SW.INS_NOT_SUPPORTED)
        return handler(apdu)

    # -- a purchase ------------------------------------------------------------------------

    def _get_processing_options(self, apdu: CommandAPDU) -> bytes:
        if (apdu.p1, apdu.p2) != (0, 0):
            raise CardError(SW.INCORRECT_P1_P2)
        if self._session.step is not _Step.SELECTED:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "GPO comes once, after SELECT")
        try:
            template = tlv.decode(apdu.data)
        except tlv.TLVError as error:
            raise CardError(SW.WRONG_DATA, f"GPO data: {error}") from error
        if len(template) != 1 or template[0].tag != 0x83:
            raise CardError(SW.WRONG_DATA, "GPO data is one 83 template")
        values, requested = _terminal_data(PDOL, template[0].value)
        ttq = values[0x9F66]
        if not ttq[0] & TTQ_QPBOC:
            self._session.step = _Step.EMV_READY
            return tlv.encode(0x80, AIP + AFL)
        offline = not ttq[1] & TTQ_ONLINE_REQUIRED and self._covers(values, requested)
        if offline:
            cid = CID_TC
        else:
            cid = CID_AAC if ttq[0] & TTQ_OFFLINE_ONLY else CID_ARQC
        purse, iad, cryptogram = self._transaction(values, requested if offline else 0, cid)
        card_data = bytes((FDDA_VERSION,)) + self.context.rng(4) + bytes(2)
        items = [(0x82, AIP), (0x94, AFL), (0x9F36, purse.atc.to_bytes(2)), (0x9F26, cryptogram),
                 (0x9F27, bytes((cid,))), (0x9F10, iad), (0x9F69, card_data),
                 (0x9F5D, amount(purse.balance))]
        if offline:
            terminal = oda.fdda_terminal_data(values[0x9F37], values[0x9F02], values[0x5F2A],
                                              card_data)
            items.append((0x9F4B, oda.sign_dynamic_data(self._icc_key(),
                                                        b"\x02" + purse.atc.to_bytes(2), terminal)))
        return tlv.constructed(0x77, *(tlv.encode(tag, value) for tag, value in items))

    def _generate_ac(self, apdu: CommandAPDU) -> bytes:
        if self._session.step is not _Step.EMV_READY:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "GENERATE AC comes after an EMV GPO")
        if apdu.p2 != 0 or apdu.p1 & 0x2F:
            raise CardError(SW.INCORRECT_P1_P2)
        values, requested = _terminal_data(CDOL1, apdu.data)
        asked = apdu.p1 & 0xC0
        if asked == CID_TC and self._covers(values, requested):
            cid = CID_TC
        else:
            cid = CID_AAC if asked == CID_AAC else CID_ARQC
        purse, iad, cryptogram = self._transaction(values, requested if cid == CID_TC else 0, cid)
        return tlv.constructed(0x77, tlv.encode(0x9F27, bytes((cid,))),
                               tlv.encode(0x9F36, purse.atc.to_bytes(2)),
                               tlv.encode(0x9F26, cryptogram), tlv.encode(0x9F10, iad))

    def _covers(self, values: dict[int, bytes], requested: int) -> bool:
        """Whether the EC balance pays for this purchase offline."""
        limits, purse = self._limits(), self._purse()
        return (0 < requested <= min(purse.balance, limits.single_limit)
                and values[0x5F2A] == limits.currency and values[0x9F03] == bytes(6))

    def _transaction(self, values: dict[int, bytes], spent: int,
                     cid: int) -> tuple[_Purse, bytes, bytes]:
        """Count the transaction (ATC), spend ``spent`` of the EC balance and log it if it is an
        offline approval; the purse after it, the IAD and the cryptogram."""
        purse = self._purse()
        if purse.atc >= ATC_MAX:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the ATC is exhausted")
        purse = replace(purse, balance=purse.balance - spent, atc=purse.atc + 1)
        self._put("purse", _PURSE.build(purse))
        if cid == CID_TC:
            self._log(values, purse.atc)
        cvr = {CID_TC: CVR_TC, CID_ARQC: CVR_ARQC}.get(cid, CVR_AAC)
        iad = issuer_data(cvr, purse.balance, purse.last_online_atc, purse.scripts)
        key = crypto.session_key(self._need("key/ac"), purse.atc)
        cryptogram = crypto.application_cryptogram(key, ac_input(values, purse.atc, iad))
        self._session = _Session(_Step.ONLINE, cryptogram, purse.atc) if cid == CID_ARQC \
            else _Session(_Step.DONE)
        return purse, iad, cryptogram

    def _log(self, values: dict[int, bytes], atc: int) -> None:
        entry = LOG_ENTRY.build(LogEntry(values[0x9A], values[0x9F21], values[0x9F02],
                                         values[0x9F03], values[0x9F1A], values[0x5F2A],
                                         values[0x9F4E], values[0x9C][0], atc.to_bytes(2)))
        kept = self._need("log")[:LOG_ENTRY.size * (LOG_RECORDS - 1)]
        self._put("log", entry + kept)

    def _icc_key(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            key = load_der_private_key(self._need("key/icc"), password=None,
                                       unsafe_skip_rsa_key_validation=True)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise CardError(SW.UNKNOWN, "the ICC key is not an RSA key")
            self._key = key
        return self._key

    # -- reading ---------------------------------------------------------------------------

    def _read_record(self, apdu: CommandAPDU) -> bytes:
        reference = RecordReference.parse(apdu)
        number, sfi = reference.number, reference.sfi
        if number is None:
            raise CardError(SW.INCORRECT_P1_P2, "READ RECORD by number and SFI only")
        if sfi == LOG_SFI:
            log = self._need("log")
            start = (number - 1) * LOG_ENTRY.size
            if start >= len(log):
                raise CardError(SW.RECORD_NOT_FOUND)
            return log[start:start + LOG_ENTRY.size]
        record = self._get(f"record/{sfi:02X}{number:02X}")
        if record is None:
            known = self.context.store.keys(self._cell(f"record/{sfi:02X}"))
            raise CardError(SW.RECORD_NOT_FOUND if known else SW.FILE_NOT_FOUND)
        return record

    def _get_data(self, apdu: CommandAPDU) -> bytes:
        tag = data_tag(apdu)
        purse, limits = self._purse(), self._limits()
        values = {0x9F79: amount(purse.balance), 0x9F77: amount(limits.balance_limit),
                  0x9F78: amount(limits.single_limit), 0x9F6D: amount(limits.reset_threshold),
                  0x9F36: purse.atc.to_bytes(2), 0x9F13: purse.last_online_atc.to_bytes(2),
                  0x9F4F: LOG_FORMAT}
        if tag not in values:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no data object {tag:04X}")
        return tlv.encode(tag, values[tag])

    # -- the issuer's script -------------------------------------------------------------------

    def _external_authenticate(self, apdu: CommandAPDU) -> bytes:
        if (apdu.p1, apdu.p2) != (0, 0):
            raise CardError(SW.INCORRECT_P1_P2)
        if self._session.step is not _Step.ONLINE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no ARQC is waiting for the issuer")
        if len(apdu.data) != 10:
            raise CardError(SW.WRONG_LENGTH, "ARPC (8) and ARC (2)")
        key = crypto.session_key(self._need("key/ac"), self._session.atc)
        expected = crypto.arpc(key, self._session.arqc, apdu.data[8:])
        if not hmac.compare_digest(expected, apdu.data[:8]):
            self._session = _Session(_Step.DONE)
            raise CardError(SW.VERIFY_FAILED, "the ARPC is wrong")
        purse = replace(self._purse(), last_online_atc=self._session.atc, scripts=0)
        self._put("purse", _PURSE.build(purse))
        self._session.step = _Step.AUTHENTICATED
        return b""

    def _put_data(self, apdu: CommandAPDU) -> bytes:
        tag = data_tag(apdu)
        if tag not in PUTTABLE:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"data object {tag:04X} is not writable")
        if self._session.step is not _Step.AUTHENTICATED:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "the issuer has not authenticated")
        if len(apdu.data) != 10:
            raise CardError(SW.WRONG_LENGTH, "a value (6) and its MAC (4)")
        value, mac = apdu.data[:6], apdu.data[6:]
        key = crypto.session_key(self._need("key/mac"), self._session.atc)
        header = bytes((apdu.cla, apdu.ins, apdu.p1, apdu.p2, len(apdu.data)))
        expected = crypto.script_mac(key, header + self._session.atc.to_bytes(2)
                                     + self._session.arqc + value)
        if not hmac.compare_digest(expected, mac):
            self._session = _Session(_Step.DONE)
            raise CardError(SW.SM_DATA_INCORRECT, "the script MAC is wrong")
        try:
            new = fen(value)
        except ValueError as error:
            raise CardError(SW.WRONG_DATA, str(error)) from error
        self._apply(tag, new)
        purse = self._purse()
        self._put("purse", _PURSE.build(replace(purse, scripts=min(purse.scripts + 1, 0xFF))))
        return b""

    def _apply(self, tag: int, new: int) -> None:
        purse, limits = self._purse(), self._limits()
        if tag == 0x9F79:
            if new > limits.balance_limit:
                raise CardError(SW.WRONG_DATA, "above the EC balance limit")
            self._put("purse", _PURSE.build(replace(purse, balance=new)))
            return
        updated = _Limits(new if tag == 0x9F77 else limits.balance_limit,
                          new if tag == 0x9F78 else limits.single_limit,
                          new if tag == 0x9F6D else limits.reset_threshold, limits.currency)
        if updated.single_limit > updated.balance_limit or purse.balance > updated.balance_limit:
            raise CardError(SW.WRONG_DATA, "the limits would not fit the balance")
        try:
            self._put("limits", _LIMITS.build(updated))
        except LayoutError as error:
            raise CardError(SW.WRONG_DATA, str(error)) from error
