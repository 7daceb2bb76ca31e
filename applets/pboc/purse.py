"""The PBOC 2.0 electronic purse applet (JR/T 0025 EP, as on JT/T 978 T-Union cards).

One class serves every stored-value card on the band: the city transit card
(AID A000000632010105, so outside T-Union readers recognise it) and the
canteen card differ only in AID, keys and file contents.

=====  ====  ====================================  ==========================
CLA    INS   command                               P1 P2
=====  ====  ====================================  ==========================
80     50    INITIALIZE FOR LOAD / PURCHASE /      00 / 01 / 03, 02 (EP)
             CAPP PURCHASE
80     52    CREDIT FOR LOAD                       00 00
80     54    DEBIT FOR (CAPP) PURCHASE             01 00
80     5A    GET TRANSACTION PROVE                 00, transaction type
80     5C    GET BALANCE                           00 02
80     DC    UPDATE CAPP DATA CACHE                record id, SFI << 3
80     5E    CHANGE PIN                            01 00
84     1E    APPLICATION BLOCK (:mod:`.block`)     00, 00 / 01
00     A4    SELECT (the DF, an EF: the runtime)   00-03, 08, 09
00     B0    READ BINARY                           SFI 0x15 / 0x16, or current
00     B2    READ RECORD                           SFI 0x17 / 0x18, or current
00     20    VERIFY (the holder PIN)               00 00
00     84    GET CHALLENGE                         00 00, Le 04 or 08
=====  ====  ====================================  ==========================

A session (after INITIALIZE) lives in RAM only: a tear or a reselection ends
it, and only a completed CREDIT / DEBIT changes the purse. Every wrong MAC
from a terminal costs one try of that key usage, committed before the
refusal; at zero the key usage is blocked (6983) until the issuer unblocks it.

Files: the purse's DF has the file identifier it was personalised with (1001
for the T-Union transit card, as Beijing and T-Union cards have it; 1002 for
the canteen card) under the card's MF (:mod:`applets.mf`); its EFs 0015 to
0018 are reachable by identifier as well as by SFI, and READ BINARY / READ
RECORD with no SFI read the EF selected last.

The holder PIN (JR/T 0025 personal identification): VERIFY answers 63Cx
with x tries left after a wrong PIN, 6983 once none are left, and with no
data the tries left (or 9000 once verified in this selection). Each VERIFY
first commits the counter one lower, then compares, then puts it back if
the PIN was right: a power cut can neither refuse a PIN without counting it
nor, by where it falls, tell a right PIN from a wrong one. JR/T 0025 asks
for the PIN in electronic deposit (ED, P2 01) transactions, which this purse
does not carry (6A86), and for CHANGE PIN, which presents the current PIN
itself; the electronic purse's load, purchase, compound purchase and
balance never need it (a gate never asks a rider for a PIN), so the PIN
verified stays a security status nothing on this card requires yet.

GET CHALLENGE gives 4 or 8 bytes of the card's randomness, kept in RAM for
the next command only: APPLICATION BLOCK's MAC chains from it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from applets import tlv
from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.files import EFKind, EFSpec, FileSystem
from applets.iso7816 import CLA_ISO, CLA_PROPRIETARY, Ins, challenge_size, verification_data
from applets.layout import Layout, LayoutError
from applets.pboc import block, crypto
from applets.pboc.commands import (
    BALANCE_P1P2,
    CAPP_CACHE_P2,
    CLA_SECURE,
    CREDIT_P1P2,
    DEBIT_P1P2,
    DEFAULT_PIN,
    INS_APPLICATION_BLOCK,
    P1_CAPP_PURCHASE,
    P1_LOAD,
    P1_PURCHASE,
    P2_EP,
    PROVE_P1,
    parse_change_pin,
    pin_bytes,
    presented_pin,
)
from applets.pboc.layouts import (
    CREDIT_COMMAND,
    DEBIT_COMMAND,
    DEBIT_RESPONSE,
    HOLDER_FILE,
    INIT_COMMAND,
    INIT_LOAD_RESPONSE,
    INIT_PURCHASE_RESPONSE,
    ISSUER_FILE,
    LOG_RECORD,
    LOG_RECORDS,
    PROVE_RESPONSE,
    SFI_HOLDER,
    SFI_ISSUER,
    SFI_LOG,
    SFI_TRANSIT,
    TRANSIT_RECORD,
    DebitResponse,
    InitLoadResponse,
    InitPurchaseResponse,
    LogRecord,
    ProveResponse,
    TxType,
    card_number,
    purse_fci,
    purse_proprietary,
)
from applets.pboc.perso import CardKey, PursePersonalisation, from_dgis
from applets.pboc.state import (
    CONFIG_CELL,
    PROOF_CELL,
    PURSE_CELL,
    ConfigCell,
    LoadSession,
    ProofCell,
    PurchaseSession,
    PurseCell,
)
from applets.registry import PERSONALIZED
from applets.runtime import Applet, AppletContext
from applets.selection import FCI_PROPRIETARY, Answer, control_information, df_control_parameters
from applets.sw import SW, tries_left

T = TypeVar("T")
ALGORITHM_3DES = 0x00
COUNTER_MAX = 0xFFFF
PIN_TRIES_MAX = 15  # what 63Cx can count
_TX_TYPES = frozenset(int(t) for t in TxType)

EF_ISSUER = EFSpec(0x0015, SFI_ISSUER, EFKind.TRANSPARENT, size=ISSUER_FILE.size)
EF_HOLDER = EFSpec(0x0016, SFI_HOLDER, EFKind.TRANSPARENT, size=HOLDER_FILE.size)
EF_TRANSIT = EFSpec(0x0017, SFI_TRANSIT, EFKind.LINEAR_FIXED,
                    record_length=TRANSIT_RECORD.size, records=1)
EF_LOG = EFSpec(0x0018, SFI_LOG, EFKind.CYCLIC, record_length=LOG_RECORD.size,
                records=LOG_RECORDS)
FILES = (EF_ISSUER, EF_HOLDER, EF_TRANSIT, EF_LOG)


class PbocPurse(Applet):
    """A JR/T 0025 electronic purse with its issuer, holder, transit and log files."""

    def __init__(self, context: AppletContext) -> None:
        super().__init__(context)
        self.files = FileSystem(context.store, context.prefix, FILES)
        self._session: LoadSession | PurchaseSession | None = None
        self._pin_verified = False
        self._challenge: bytes | None = None

    # -- cells ------------------------------------------------------------------

    def _purse(self) -> PurseCell:
        raw = self._get("purse")
        if raw is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the purse is not personalised")
        return PURSE_CELL.parse(raw)

    def balance(self) -> int:
        """The balance as the card's owner sees it (the band's own display, not a reader)."""
        return self._purse().balance

    def _config(self) -> ConfigCell:
        return CONFIG_CELL.parse(self.context.store.require(self._cell("config")))

    # -- personalisation ------------------------------------------------------------

    def personalise(self, data: PursePersonalisation) -> None:
        """Write files, keys and an empty purse (pending until the caller commits); 6A80 for
        a serial that is not BCD after the issuer's prefix or a PIN that is no PIN, 6A89 for
        a file identifier another application's DF has."""
        if self._get("purse") is not None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the purse is already personalised")
        try:
            card_number(data.issuer_file.app_serial)
            pin = pin_bytes(data.pin)
        except ValueError as error:
            raise CardError(SW.WRONG_DATA, str(error)) from error
        if not 1 <= data.pin_tries <= PIN_TRIES_MAX:
            raise CardError(SW.WRONG_DATA, f"a PIN allows 1 to {PIN_TRIES_MAX} tries")
        if data.file_id is not None:
            if any(other is not self and other.file_id == data.file_id
                   for other in self.context.card.applets):
                raise CardError(SW.FILE_ALREADY_EXISTS,
                                f"another application's DF is {data.file_id:04X}")
            self.files.set_file_id(data.file_id)
        self._put("pin", bytes((data.pin_tries,)) + pin)
        self._put("tries/pin", bytes((data.pin_tries,)))
        self.files.write_binary(EF_ISSUER, 0, ISSUER_FILE.build(data.issuer_file))
        self.files.write_binary(EF_HOLDER, 0, data.holder_file)
        for number, record in enumerate(data.transit_records, start=1):
            self.files.write_record(EF_TRANSIT, number, record)
        for usage, keys in (("dpk", data.purchase_keys), ("dlk", data.load_keys)):
            for index, card_key in keys.items():
                self._put(f"key/{usage}/{index:02X}", bytes((card_key.version,)) + card_key.key)
            self._put(f"tries/{usage}", bytes((data.mac_tries,)))
        self._put("key/dtk", data.tac_key)
        if data.maintenance_key is not None:
            self._put("key/damk", data.maintenance_key)
            self._put("tries/damk", bytes((data.mac_tries,)))
        self._put("config", CONFIG_CELL.build(ConfigCell(data.max_balance, data.mac_tries)))
        self._put("purse", PURSE_CELL.build(PurseCell(0, 0, 0)))

    def store_data(self, dgi: int, data: bytes, last: bool) -> None:
        """STORE DATA from the purse's security domain: DGIs kept until the last block."""
        if self._get("purse") is not None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the purse is already personalised")
        self._put(f"perso/{dgi:04X}", data)
        if not last:
            return
        received = {int(key.rsplit("/", 1)[1], 16): self.context.store.require(key)
                    for key in self.context.store.keys(self._cell("perso/"))}
        try:
            personalisation = from_dgis(received)
        except (ValueError, LayoutError) as error:
            raise CardError(SW.WRONG_DATA, str(error)) from error
        for key in self.context.store.keys(self._cell("perso/")):
            self.context.store.delete(key)
        self.personalise(personalisation)
        self.context.card.set_lifecycle(self.aid, PERSONALIZED)

    # -- applet interface --------------------------------------------------------------

    def select(self, apdu: CommandAPDU) -> bytes:
        """The FCI PBOC terminals read the issuer file from (tag 9F0C), whether the purse was
        selected by AID or by file identifier; the FCP or FMD when P2 asks for those."""
        self.deselect()
        block.check_selectable(self._get("block"))
        answer = Answer(apdu.p2 & 0x0C)
        issuer_file = self.files.binary(EF_ISSUER)
        if answer is Answer.FCI:
            return purse_fci(self.aid, issuer_file)
        return control_information(answer, df_control_parameters(self.file_id, self.aid),
                                   tlv.encode(FCI_PROPRIETARY, purse_proprietary(issuer_file)))

    def deselect(self) -> None:
        self._session = None
        self._pin_verified = False
        self._challenge = None
        self.files.current = None

    @property
    def file_id(self) -> int | None:
        return self.files.file_id

    def has_ef(self, fid: int) -> bool:
        return self.files.has(fid)

    def select_ef(self, fid: int, answer: Answer) -> bytes:
        spec = self.files.select(fid)
        return control_information(answer, self.files.control_parameters(spec))

    def process(self, apdu: CommandAPDU) -> bytes:
        # A challenge is for the command right after GET CHALLENGE only.
        challenge, self._challenge = self._challenge, None
        if apdu.cla == CLA_SECURE and apdu.ins == INS_APPLICATION_BLOCK:
            return self._application_block(apdu, challenge)
        if apdu.cla == CLA_ISO:
            if apdu.ins == Ins.VERIFY:
                return self._verify(apdu)
            if apdu.ins == Ins.GET_CHALLENGE:
                self._challenge = self.context.rng(challenge_size(apdu))
                return self._challenge
            return self.files.handle(apdu)
        if apdu.cla != CLA_PROPRIETARY:
            raise CardError(SW.CLA_NOT_SUPPORTED)
        handler = _HANDLERS.get(apdu.ins)
        if handler is None:
            raise CardError(SW.INS_NOT_SUPPORTED)
        # A session ends with the next command unless that command continues it.
        session, self._session = self._session, None
        return handler(self, apdu, session)

    # -- the holder PIN ------------------------------------------------------------------

    def _pin(self) -> tuple[bytes, int, int]:
        """The PIN, its try limit and the tries left. A purse personalised before it had a
        PIN has the default one."""
        raw = self._get("pin")
        pin, limit = (raw[1:], raw[0]) if raw else (pin_bytes(DEFAULT_PIN), 3)
        tries = self._get("tries/pin")
        return pin, limit, limit if tries is None else tries[0]

    def _verify(self, apdu: CommandAPDU) -> bytes:
        presented = verification_data(apdu)
        if presented:
            self._check_pin(presented_pin(presented))
            return b""
        _, _, tries = self._pin()
        if tries == 0:
            raise CardError(SW.AUTHENTICATION_METHOD_BLOCKED, "the PIN is blocked")
        if not self._pin_verified:
            raise CardError(tries_left(tries), "the PIN is not verified")
        return b""

    def _check_pin(self, presented: bytes) -> None:
        """Compare ``presented`` with the PIN, counting the try first (see the module's
        docstring): 63Cx or 6983 when it is wrong or blocked."""
        self._pin_verified = False
        pin, limit, tries = self._pin()
        if tries == 0:
            raise CardError(SW.AUTHENTICATION_METHOD_BLOCKED, "the PIN is blocked")
        self._put("tries/pin", bytes((tries - 1,)))
        self.context.store.commit()
        if not hmac.compare_digest(presented, pin):
            raise CardError(tries_left(tries - 1), f"wrong PIN; {tries - 1} tries left")
        self._put("tries/pin", bytes((limit,)))
        self._pin_verified = True

    def _change_pin(self, apdu: CommandAPDU, _session: object) -> bytes:
        current, new = parse_change_pin(apdu)
        self._check_pin(current)
        _, limit, _ = self._pin()
        self._put("pin", bytes((limit,)) + new)
        return b""

    # -- APPLICATION BLOCK (applets.pboc.block) --------------------------------------------

    def _application_block(self, apdu: CommandAPDU, challenge: bytes | None) -> bytes:
        state, mac = block.expected(apdu, challenge, self._get("key/damk"), self._get("tries/damk"))
        self._verify_mac("damk", mac, apdu.data)
        self._put("block", state)
        return b""

    # -- GET BALANCE ---------------------------------------------------------------

    def _get_balance(self, apdu: CommandAPDU, _session: object) -> bytes:
        _p1p2(apdu, *BALANCE_P1P2)
        if apdu.data:
            raise CardError(SW.WRONG_LENGTH, "GET BALANCE takes no data")
        return self._purse().balance.to_bytes(4)

    # -- INITIALIZE FOR ... ------------------------------------------------------------

    def _initialize(self, apdu: CommandAPDU, _session: object) -> bytes:
        if apdu.p2 != P2_EP:
            raise CardError(SW.INCORRECT_P1_P2, "only the electronic purse (P2=02) exists")
        if apdu.p1 not in (P1_LOAD, P1_PURCHASE, P1_CAPP_PURCHASE):
            raise CardError(SW.INCORRECT_P1_P2, f"INITIALIZE P1={apdu.p1:02X} is unknown")
        command = _command_data(apdu, INIT_COMMAND, "INITIALIZE")
        purse = self._purse()
        if apdu.p1 == P1_LOAD:
            return self._initialize_load(command.key_index, command.amount,
                                         command.terminal_id, purse)
        tx_type = TxType.EP_PURCHASE if apdu.p1 == P1_PURCHASE else TxType.CAPP_PURCHASE
        return self._initialize_purchase(tx_type, command.key_index, command.amount,
                                         command.terminal_id, purse)

    def _key(self, usage: str, index: int) -> CardKey:
        raw = self._get(f"key/{usage}/{index:02X}")
        if raw is None:
            raise CardError(SW.KEY_INDEX_NOT_SUPPORTED, f"no {usage.upper()} with index {index}")
        tries = self._get(f"tries/{usage}")
        if tries is None or tries[0] == 0:
            raise CardError(SW.AUTHENTICATION_METHOD_BLOCKED, f"{usage.upper()} is blocked")
        return CardKey(raw[0], raw[1:])

    def _initialize_load(self, key_index: int, amount: int, terminal_id: bytes,
                         purse: PurseCell) -> bytes:
        card_key = self._key("dlk", key_index)
        if amount == 0 or purse.balance + amount > self._config().max_balance:
            raise CardError(SW.WRONG_DATA, f"cannot load {amount} onto {purse.balance}")
        if purse.online_counter >= COUNTER_MAX:
            raise CardError(SW.TRANSACTION_COUNTER_AT_LIMIT)
        random = self.context.rng(4)
        session_key = crypto.load_session_key(card_key.key, random, purse.online_counter)
        mac1 = crypto.load_mac1(session_key, purse.balance, amount, TxType.EP_LOAD, terminal_id)
        self._session = LoadSession(key_index, amount, terminal_id, purse.balance,
                                     purse.online_counter, session_key)
        return INIT_LOAD_RESPONSE.build(InitLoadResponse(
            purse.balance, purse.online_counter, card_key.version, ALGORITHM_3DES, random, mac1))

    def _initialize_purchase(self, tx_type: TxType, key_index: int, amount: int,
                             terminal_id: bytes, purse: PurseCell) -> bytes:
        card_key = self._key("dpk", key_index)
        if purse.offline_counter >= COUNTER_MAX:
            raise CardError(SW.TRANSACTION_COUNTER_AT_LIMIT)
        if amount > purse.balance:
            raise CardError(SW.INSUFFICIENT_FUNDS, f"{amount} wanted, {purse.balance} held")
        random = self.context.rng(4)
        self._session = PurchaseSession(tx_type, card_key.key, amount, terminal_id,
                                         purse.balance, purse.offline_counter, random)
        return INIT_PURCHASE_RESPONSE.build(InitPurchaseResponse(
            purse.balance, purse.offline_counter, 0, card_key.version, ALGORITHM_3DES, random))

    # -- the MAC check every terminal MAC goes through ------------------------------

    def _verify_mac(self, usage: str, expected: bytes, received: bytes) -> None:
        tries = self.context.store.require(self._cell(f"tries/{usage}"))[0]
        if hmac.compare_digest(expected, received):
            limit = self._config().mac_tries
            if tries != limit:
                self._put(f"tries/{usage}", bytes((limit,)))
            return
        self._put(f"tries/{usage}", bytes((max(tries - 1, 0),)))
        self.context.store.commit()  # the failure counts even though the command fails
        raise CardError(SW.MAC_INVALID, f"wrong MAC from the terminal; {tries - 1} tries left")

    # -- CREDIT FOR LOAD -------------------------------------------------------------

    def _credit_for_load(self, apdu: CommandAPDU, session: object) -> bytes:
        _p1p2(apdu, *CREDIT_P1P2)
        if not isinstance(session, LoadSession):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE FOR LOAD before")
        command = _command_data(apdu, CREDIT_COMMAND, "CREDIT FOR LOAD")
        terminal = crypto.Terminal(session.terminal_id, command.date, command.time)
        expected = crypto.load_mac2(session.session_key, session.amount, TxType.EP_LOAD, terminal)
        self._verify_mac("dlk", expected, command.mac2)
        purse = self._purse()
        new_balance = purse.balance + session.amount
        tac = crypto.load_tac(self.context.store.require(self._cell("key/dtk")), new_balance,
                              session.counter, session.amount, TxType.EP_LOAD, terminal)
        self._put("purse", PURSE_CELL.build(replace(
            purse, balance=new_balance, online_counter=purse.online_counter + 1)))
        self._log(session.counter, session.amount, TxType.EP_LOAD, terminal)
        self._put("proof/load", PROOF_CELL.build(
            ProofCell(TxType.EP_LOAD, session.counter, command.mac2, tac)))
        return tac

    # -- compound purchase -----------------------------------------------------------

    def _update_capp_data_cache(self, apdu: CommandAPDU, session: object) -> bytes:
        if not isinstance(session, PurchaseSession) or session.tx_type != TxType.CAPP_PURCHASE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE FOR CAPP PURCHASE before")
        if apdu.p2 != CAPP_CACHE_P2:
            raise CardError(SW.INCORRECT_P1_P2, "UPDATE CAPP DATA CACHE addresses EF 0x17 by id")
        if len(apdu.data) != EF_TRANSIT.record_length or apdu.data[0] != apdu.p1:
            raise CardError(SW.WRONG_LENGTH, "the cached record must be a whole record "
                                             "starting with its identifier")
        number = self.files.find_record(EF_TRANSIT, apdu.p1)
        self._session = replace(session, capp_record=(number, apdu.data))
        return b""

    def _debit_for_purchase(self, apdu: CommandAPDU, session: object) -> bytes:
        _p1p2(apdu, *DEBIT_P1P2)
        if not isinstance(session, PurchaseSession):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE FOR PURCHASE before")
        command = _command_data(apdu, DEBIT_COMMAND, "DEBIT")
        terminal = crypto.Terminal(session.terminal_id, command.date, command.time)
        session_key = crypto.purchase_session_key(session.key, session.random,
                                                  session.counter, command.terminal_seq)
        expected = crypto.purchase_mac1(session_key, session.amount, session.tx_type, terminal)
        self._verify_mac("dpk", expected, command.mac1)
        purse = self._purse()
        mac2 = crypto.purchase_mac2(session_key, session.amount)
        tac = crypto.purchase_tac(self.context.store.require(self._cell("key/dtk")),
                                  session.amount, session.tx_type, terminal,
                                  command.terminal_seq)
        self._put("purse", PURSE_CELL.build(replace(
            purse, balance=purse.balance - session.amount,
            offline_counter=purse.offline_counter + 1)))
        if session.capp_record is not None:
            self.files.write_record(EF_TRANSIT, *session.capp_record)
        self._log(session.counter, session.amount, session.tx_type, terminal)
        self._put("proof/purchase", PROOF_CELL.build(
            ProofCell(session.tx_type, session.counter, mac2, tac)))
        return DEBIT_RESPONSE.build(DebitResponse(tac, mac2))

    # -- recovery of an interrupted transaction -----------------------------------------

    def _get_transaction_prove(self, apdu: CommandAPDU, _session: object) -> bytes:
        if apdu.p1 != PROVE_P1 or apdu.p2 not in _TX_TYPES:
            raise CardError(SW.INCORRECT_P1_P2, "P2 is the transaction type")
        if len(apdu.data) != 2:
            raise CardError(SW.WRONG_LENGTH, "GET TRANSACTION PROVE data is the 2-byte counter")
        kind = "load" if apdu.p2 in (TxType.ED_LOAD, TxType.EP_LOAD) else "purchase"
        raw = self._get(f"proof/{kind}")
        proof = PROOF_CELL.parse(raw) if raw else None
        if (proof is None or proof.tx_type != apdu.p2
                or proof.counter != int.from_bytes(apdu.data)):
            raise CardError(SW.MAC_NOT_AVAILABLE, "no such completed transaction")
        return PROVE_RESPONSE.build(ProveResponse(proof.mac, proof.tac))

    def _log(self, counter: int, amount: int, tx_type: int, terminal: crypto.Terminal) -> None:
        self.files.append_record(EF_LOG, LOG_RECORD.build(LogRecord(
            counter, 0, amount, tx_type, terminal.terminal_id, terminal.date, terminal.time)))


def _command_data(apdu: CommandAPDU, layout: Layout[T], name: str) -> T:
    if len(apdu.data) != layout.size:
        raise CardError(SW.WRONG_LENGTH, f"{name} data has {layout.size} bytes")
    return layout.parse(apdu.data)


def _p1p2(apdu: CommandAPDU, p1: int, p2: int) -> None:
    if (apdu.p1, apdu.p2) != (p1, p2):
        raise CardError(SW.INCORRECT_P1_P2, f"expected P1 P2 {p1:02X} {p2:02X}")


_HANDLERS: dict[int, Callable[[PbocPurse, CommandAPDU, object], bytes]] = {
    Ins.INITIALIZE: PbocPurse._initialize,
    Ins.CREDIT_FOR_LOAD: PbocPurse._credit_for_load,
    Ins.DEBIT_FOR_PURCHASE: PbocPurse._debit_for_purchase,
    Ins.GET_TRANSACTION_PROVE: PbocPurse._get_transaction_prove,
    Ins.GET_BALANCE: PbocPurse._get_balance,
    Ins.UPDATE_CAPP_DATA_CACHE: PbocPurse._update_capp_data_cache,
    Ins.CHANGE_PIN: PbocPurse._change_pin,
}
