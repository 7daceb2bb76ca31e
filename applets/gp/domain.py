"""GlobalPlatform security domains: the card manager (ISD) and supplementary domains (SSD).

A domain answers to its own keys only. Everything that changes the card —
INSTALL, DELETE, PUT KEY, STORE DATA, SET STATUS — and GET STATUS need an
authenticated secure channel with that domain; a domain manages only the
applications associated with it (the ISD also creates and deletes SSDs and
locks the card), so the band maker's keys open none of an operator's cards.

A domain is multi-selectable: the card manager is selected on every logical
channel opened from the basic one, and each channel has its own secure
channel session, personalisation target and GET STATUS search (RAM only).

==========  =====  ===============================================
CLA         INS    command (GP Card Specification 2.3, chapter 11)
==========  =====  ===============================================
80          50     INITIALIZE UPDATE
84          82     EXTERNAL AUTHENTICATE
80 / 00     CA CB  GET DATA (9F7F CPLC, 66 card data, E0 keys, 42, 45)
80 / 84     E6     INSTALL [for install / make selectable / personalization]
80 / 84     E4     DELETE
80 / 84     F2     GET STATUS (P2 02 tagged / 00 GP 2.1.1 format, 6310 + P2 b1: next)
80 / 84     F0     SET STATUS
80 / 84     D8     PUT KEY
80 / 84     E2     STORE DATA (DGI format)
==========  =====  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from applets import tlv
from applets.apdu import SHORT_MAX_NE, CommandAPDU, ResponseAPDU
from applets.crypto import scp02, scp03
from applets.errors import CardError
from applets.gp import dgi as dgi_codec
from applets.gp import loadfiles, status
from applets.gp.channel import (
    SCP02_I,
    SCP02_I_VALUES,
    SCP03_I,
    SM_BIT,
    Scp02Channel,
    Scp03Channel,
    SecureChannel,
)
from applets.gp.keys import INITIAL_KVN, MAX_AUTH_FAILURES, KeySet, KeyStore
from applets.iso7816 import Ins, data_tag
from applets.registry import (
    CARD_LOCK,
    CARD_LOCKED,
    CARD_SECURED,
    CARD_TERMINATE,
    CARD_TERMINATED,
    DEFAULT_SELECTED,
    INSTALLED,
    LOCKED_BIT,
    SECURITY_DOMAIN,
    SELECTABLE,
    Entry,
)
from applets.runtime import Applet, AppletContext, Reply
from applets.selection import fci
from applets.sw import SW

ISD_AID = bytes.fromhex("A000000151000000")
ISD_PRIVILEGES = bytes((SECURITY_DOMAIN | CARD_LOCK | CARD_TERMINATE | DEFAULT_SELECTED | 0x02,
                        0x40, 0x00))
AUTHORIZED_MANAGEMENT = 0x40  # privilege byte 2
LOADED = 0x01  # an executable load file's life cycle (GPCS 5.3.1)
GP_OID = bytes.fromhex("2A864886FC6B")
DGI_FORMAT = 0x08
ENCRYPTED = 0x60
LAST_BLOCK = 0x80


def _lv_items(data: bytes) -> list[bytes]:
    items, i = [], 0
    while i < len(data):
        n = data[i]
        if i + 1 + n > len(data):
            raise CardError(SW.WRONG_DATA, f"length {n} at byte {i} runs past the data")
        items.append(data[i + 1: i + 1 + n])
        i += 1 + n
    return items


@dataclass(frozen=True, slots=True)
class _Search:
    """A GET STATUS answered in part (6310): what it asked and the records not sent yet."""

    request: tuple[status.Scope, bytes, bool]
    left: tuple[bytes, ...]


@dataclass(slots=True)
class _Session:
    """What a domain keeps for one logical channel, in RAM only."""

    secure: SecureChannel | None = None
    perso: bytes | None = None  # the application INSTALL [for personalization] named
    search: _Search | None = None


class SecurityDomain(Applet):
    multiselectable = True

    def __init__(self, context: AppletContext) -> None:
        super().__init__(context)
        self.keys = KeyStore(context.store, context.prefix)
        self._sessions: dict[int, _Session] = {}

    @property
    def _session(self) -> _Session:
        return self._sessions.setdefault(self.context.card.channel, _Session())

    @property
    def _secure(self) -> SecureChannel | None:
        return self._session.secure

    @_secure.setter
    def _secure(self, channel: SecureChannel | None) -> None:
        self._session.secure = channel

    @property
    def _perso(self) -> bytes | None:
        return self._session.perso

    @_perso.setter
    def _perso(self, aid: bytes | None) -> None:
        self._session.perso = aid

    # -- set-up (the band factory for the ISD, INSTALL for an SSD) -----------------------

    def provision(self, keys: KeySet, div_data: bytes, cplc: bytes = b"",
                  scp02_i: int = SCP02_I) -> None:
        if len(div_data) != 10:
            raise ValueError("key diversification data has 10 bytes")
        if scp02_i not in SCP02_I_VALUES:
            raise ValueError(f"SCP02 i={scp02_i:02X} is not offered")
        self.keys.put(keys)
        self._put("scp02-i", bytes((scp02_i,)))
        self._put("div", div_data)
        if cplc:
            self._put("cplc", cplc)

    @property
    def scp02_i(self) -> int:
        """The SCP02 option this domain runs (card recognition data tells hosts)."""
        raw = self._get("scp02-i")
        return raw[0] if raw else SCP02_I

    @property
    def is_isd(self) -> bool:
        return self.context.card.entry(self.aid).domain == b""

    # -- applet interface ----------------------------------------------------------------

    def select(self, apdu: CommandAPDU) -> bytes:
        self.deselect()
        return fci(self.aid, tlv.encode(0x73, self._card_data()), tlv.encode(0x9F65, b"\xff"))

    def deselect(self) -> None:
        self._sessions.pop(self.context.card.channel, None)

    def process(self, apdu: CommandAPDU) -> Reply:
        channel = self._secure
        secured = bool(apdu.cla & SM_BIT) and apdu.ins != Ins.EXTERNAL_AUTHENTICATE
        if secured:
            if channel is None or not channel.authenticated:
                raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "no secure channel is open")
            try:
                apdu = channel.unwrap(apdu)
            except CardError:
                self._secure = None
                raise
        handler = _HANDLERS.get(apdu.ins)
        if handler is None or apdu.cla & 0xF0 not in (0x00, 0x80):
            raise CardError(SW.INS_NOT_SUPPORTED if handler is None else SW.CLA_NOT_SUPPORTED)
        needs_channel, method = handler
        if needs_channel and not secured:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "this command needs a secure channel")
        reply = method(self, apdu)
        data, sw = (reply.data, reply.sw) if isinstance(reply, ResponseAPDU) else (reply, SW.OK)
        if secured and self._secure is not None:
            data = self._secure.wrap(data, sw)  # a warning's answer carries its R-MAC too
        return data if sw == SW.OK else ResponseAPDU(data, sw)

    # -- opening a secure channel ------------------------------------------------------

    def _initialize_update(self, apdu: CommandAPDU) -> bytes:
        if apdu.p2 != 0x00:
            raise CardError(SW.INCORRECT_P1_P2, "INITIALIZE UPDATE takes P2=00")
        if self.keys.failures() >= MAX_AUTH_FAILURES:
            raise CardError(SW.AUTHENTICATION_METHOD_BLOCKED, "the domain's keys are blocked")
        keys = self.keys.get(apdu.p1)
        counter = int.from_bytes(self._get("seq") or bytes(3)) + 1
        self._put("seq", counter.to_bytes(3))
        self.context.store.commit()  # a challenge is never reused, whatever follows
        channel: SecureChannel
        if keys.scp == 3:
            channel = Scp03Channel(keys, self.aid, counter)
        else:
            channel = Scp02Channel(keys, counter & 0xFFFF, self.context.rng(6), self.scp02_i)
        self._secure = channel
        return channel.initialize_update(apdu.data, self._get("div") or bytes(10))

    def _external_authenticate(self, apdu: CommandAPDU) -> bytes:
        channel, self._secure = self._secure, None
        if channel is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE UPDATE before")
        try:
            channel.external_authenticate(apdu)
        except CardError as refusal:
            if refusal.sw == SW.VERIFY_FAILED:
                self.keys.set_failures(self.keys.failures() + 1)
                self.context.store.commit()
            raise
        if self.keys.failures():
            self.keys.set_failures(0)
        self._secure = channel
        return b""

    # -- GET DATA ----------------------------------------------------------------------

    def _card_data(self) -> bytes:
        keys = self.keys.get(0)
        scp = bytes((0x03, SCP03_I)) if keys.scp == 3 else bytes((0x02, self.scp02_i))
        return b"".join((
            tlv.encode(0x06, GP_OID + b"\x01"),
            tlv.encode(0x60, tlv.encode(0x06, GP_OID + b"\x02\x02\x03")),
            tlv.encode(0x63, tlv.encode(0x06, GP_OID + b"\x03")),
            tlv.encode(0x64, tlv.encode(0x06, GP_OID + b"\x04" + scp)),
        ))

    def _get_data(self, apdu: CommandAPDU) -> bytes:
        tag = data_tag(apdu)
        if tag == 0x9F7F:
            cplc = self._get("cplc")
            if cplc is None:
                raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "only the card manager has a CPLC")
            return tlv.encode(0x9F7F, cplc)
        if tag == 0x0066:
            return tlv.encode(0x66, tlv.encode(0x73, self._card_data()))
        if tag == 0x00E0:
            templates = b""
            for version in self.keys.versions():
                keys = self.keys.get(version)
                for key_id, key in enumerate((keys.enc, keys.mac, keys.dek), start=1):
                    templates += tlv.encode(0xC0, bytes((key_id, version, keys.key_type, len(key))))
            return tlv.encode(0xE0, templates)
        if tag in (0x0042, 0x0045):
            div = self._get("div") or bytes(10)
            return tlv.encode(tag, div[:4] if tag == 0x0042 else div)
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no data object {tag:04X}")

    # -- the registry, as this domain may see and change it ------------------------------

    def _visible(self) -> list[Entry]:
        entries = self.context.card.entries()
        if self.is_isd:
            return entries
        return [e for e in entries if self.aid in (e.aid, e.domain)]

    def _managed(self, aid: bytes) -> Entry:
        """An application this domain may manage: one associated with it (for the ISD,
        that includes the SSDs it created, but never what an SSD holds)."""
        entry = self.context.card.entry(aid)
        if entry.aid == self.aid or entry.domain != self.aid:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED,
                            f"{aid.hex().upper()} belongs to another security domain")
        return entry

    def _get_status(self, apdu: CommandAPDU) -> Reply:
        """GET STATUS (GPCS 11.4.2): as many records as fit the answer after the secure
        channel wraps them, 6310 while more are left for the next-occurrence command."""
        request = status.GetStatus.parse(apdu)
        session = self._session
        if request.next_occurrence:
            search = session.search
            if search is None or search.request != request.search:
                raise CardError(SW.CONDITIONS_NOT_SATISFIED,
                                "no GET STATUS of this scope and criterion to continue")
            records = search.left
        else:
            session.search = None
            modules = request.scope is status.Scope.LOAD_FILES_AND_MODULES
            records = tuple(record.encode(request.tagged, modules)
                            for record in self._registry(request.scope)
                            if record.aid.startswith(request.aid))
            if not records:
                raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "nothing matches")
        ne = SHORT_MAX_NE if apdu.ne is None else apdu.ne
        room = self._secure.room(ne) if self._secure is not None else ne
        count, size = 0, 0
        while count < len(records) and (not count or size + len(records[count]) <= room):
            size += len(records[count])
            count += 1
        page, left = b"".join(records[:count]), records[count:]
        session.search = _Search(request.search, left) if left else None
        return ResponseAPDU(page, SW.MORE_DATA_AVAILABLE) if left else page

    def _registry(self, scope: status.Scope) -> list[status.Record]:
        card = self.context.card
        if scope is status.Scope.ISSUER_SECURITY_DOMAIN:
            if not self.is_isd:
                return []  # a supplementary domain does not see the card manager
            isd = card.entry(self.aid)
            return [status.Record(isd.aid, card.card_state, isd.privileges)]
        if scope is status.Scope.APPLICATIONS:
            return [status.Record(e.aid, e.lifecycle, e.privileges,
                                  loadfiles.load_file_of(e.class_name).aid, e.domain)
                    for e in self._visible() if e.domain]
        return [status.Record(lf.aid, LOADED, version=lf.version, modules=tuple(lf.modules))
                for lf in loadfiles.LOAD_FILES]

    # -- INSTALL --------------------------------------------------------------------

    def _install(self, apdu: CommandAPDU) -> bytes:
        if apdu.p1 == 0x20:
            return self._install_for_personalization(apdu)
        if apdu.p1 not in (0x04, 0x0C):
            raise CardError(SW.INCORRECT_P1_P2, "INSTALL supports P1 04, 0C and 20 (no loading)")
        items = _lv_items(apdu.data)
        if len(items) < 5:
            raise CardError(SW.WRONG_DATA, "INSTALL needs load file, module, AID, privileges, "
                                           "parameters")
        load_file, module, aid, privileges = items[0], items[1], items[2], items[3]
        try:
            class_name = loadfiles.module_class(load_file, module)
        except KeyError:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "the band has no such load file or "
                                                          "module") from None
        privileges = (privileges + bytes(3))[:3]
        is_domain = class_name == loadfiles.SECURITY_DOMAIN
        if is_domain != bool(privileges[0] & SECURITY_DOMAIN):
            raise CardError(SW.WRONG_DATA, "only the security domain module takes SD privileges")
        if is_domain and not self.is_isd:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "only the card manager creates domains")
        if privileges[0] & (CARD_LOCK | CARD_TERMINATE | 0x04):
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "card-wide privileges stay with the ISD")
        me = self.context.card.entry(self.aid)
        if not self.is_isd and not me.privileges[1] & AUTHORIZED_MANAGEMENT:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "this domain may not install")
        lifecycle = SELECTABLE if apdu.p1 & 0x08 else INSTALLED
        applet = self.context.card.install(aid, class_name, privileges, self.aid, lifecycle)
        if isinstance(applet, SecurityDomain):
            parent = self.keys.get(0)
            applet.provision(KeySet.test_keys(parent.scp), self._get("div") or bytes(10),
                             scp02_i=self.scp02_i)
        return b"\x00"

    def _install_for_personalization(self, apdu: CommandAPDU) -> bytes:
        items = _lv_items(apdu.data)
        if len(items) < 3 or not items[2]:
            raise CardError(SW.WRONG_DATA, "INSTALL [for personalization] names the application")
        self._managed(items[2])
        self._perso = items[2]
        return b"\x00"

    def _store_data(self, apdu: CommandAPDU) -> bytes:
        if self._perso is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INSTALL [for personalization] before")
        if not apdu.p1 & DGI_FORMAT:
            raise CardError(SW.INCORRECT_P1_P2, "STORE DATA takes DGI-formatted data")
        target = self.context.card.applet(self._perso)
        try:
            dgis = dgi_codec.decode(apdu.data)
        except ValueError as error:
            raise CardError(SW.WRONG_DATA, str(error)) from error
        last = bool(apdu.p1 & LAST_BLOCK)
        for n, (dgi, value) in enumerate(dgis, start=1):
            plain = value
            if dgi & 0x8000:
                if apdu.p1 & ENCRYPTED != ENCRYPTED or self._secure is None:
                    raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED,
                                    f"DGI {dgi:04X} must arrive encrypted under the DEK")
                plain = self._secure.decrypt_key(value)
            target.store_data(dgi, plain, last and n == len(dgis))
        if last:
            self._perso = None
        return b""

    # -- DELETE, SET STATUS ------------------------------------------------------------

    def _delete(self, apdu: CommandAPDU) -> bytes:
        try:
            items = tlv.decode(apdu.data)
        except tlv.TLVError as error:
            raise CardError(SW.WRONG_DATA, f"DELETE data: {error}") from error
        if apdu.p2 not in (0x00, 0x80) or len(items) != 1 or items[0].tag != 0x4F:
            raise CardError(SW.WRONG_DATA, "DELETE takes one 4F AID (P2 00 or 80)")
        aid = items[0].value
        if any(lf.aid == aid for lf in loadfiles.LOAD_FILES):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "load files are in ROM on the band")
        entry = self._managed(aid)
        dependants = [e for e in self.context.card.entries() if e.domain == aid]
        if dependants and apdu.p2 != 0x80:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the domain still has applications "
                                                         "(P2=80 deletes them too)")
        for dependant in dependants:
            self.context.card.delete(dependant.aid)
        self.context.card.delete(entry.aid)
        return b"\x00"

    def _set_status(self, apdu: CommandAPDU) -> bytes:
        card = self.context.card
        if apdu.p1 == 0x80:
            if not self.is_isd:
                raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "only the card manager locks the card")
            if apdu.p2 not in (CARD_LOCKED, CARD_SECURED, CARD_TERMINATED):
                raise CardError(SW.INCORRECT_P1_P2, f"card state {apdu.p2:02X} is not allowed")
            if card.card_state == CARD_TERMINATED:
                raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the card is terminated")
            card.set_card_state(apdu.p2)
            return b""
        if apdu.p1 not in (0x40, 0x60):
            raise CardError(SW.INCORRECT_P1_P2, f"SET STATUS P1={apdu.p1:02X} is unknown")
        entry = self._managed(apdu.data)
        if apdu.p2 & 0x7F:
            raise CardError(SW.INCORRECT_P1_P2, "applications are locked (80) or unlocked (00)")
        targets = [entry]
        if apdu.p1 == 0x60:
            targets += [e for e in card.entries() if e.domain == entry.aid]
        for target in targets:
            lock = target.lifecycle | LOCKED_BIT if apdu.p2 else target.lifecycle & ~LOCKED_BIT
            card.set_lifecycle(target.aid, lock)
        return b""

    # -- PUT KEY -------------------------------------------------------------------------

    def _put_key(self, apdu: CommandAPDU) -> bytes:
        if apdu.p2 != 0x81:
            raise CardError(SW.INCORRECT_P1_P2, "PUT KEY replaces whole key sets (P2=81)")
        channel = self._secure
        if channel is None:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "no secure channel is open")
        data = apdu.data
        if len(data) < 1:
            raise CardError(SW.WRONG_LENGTH, "PUT KEY data is empty")
        version, i, keys, kcvs = data[0], 1, [], b""
        current = self.keys.get(0)
        for _ in range(3):
            if i + 2 > len(data):
                raise CardError(SW.WRONG_DATA, "PUT KEY data is truncated")
            key_type, n = data[i], data[i + 1]
            block = data[i + 2: i + 2 + n]
            i += 2 + n
            if key_type != current.key_type or len(block) != n:
                raise CardError(SW.WRONG_DATA, f"key type {key_type:02X} is not this domain's")
            if key_type == 0x88:  # AES: a length byte before the encrypted key
                block = block[1:]
            key = channel.decrypt_key(block)
            kcv_len = data[i] if i < len(data) else 0
            kcv = data[i + 1: i + 1 + kcv_len]
            i += 1 + kcv_len
            computed = scp03.kcv(key) if current.scp == 3 else scp02.kcv(key)
            if kcv and kcv != computed:
                raise CardError(SW.WRONG_DATA, "a key check value does not match")
            keys.append(key)
            kcvs += computed
        new = KeySet(version, current.scp, keys[0], keys[1], keys[2])
        if apdu.p1 not in (0x00, version):
            self.keys.delete(apdu.p1)
        if INITIAL_KVN in self.keys.versions() and version != INITIAL_KVN:
            self.keys.delete(INITIAL_KVN)  # the first key set of its owner ends the test keys
        self.keys.put(new)
        return bytes((version,)) + kcvs


_Handler = tuple[bool, Callable[[SecurityDomain, CommandAPDU], Reply]]
_HANDLERS: dict[int, _Handler] = {
    Ins.INITIALIZE_UPDATE: (False, SecurityDomain._initialize_update),
    Ins.EXTERNAL_AUTHENTICATE: (False, SecurityDomain._external_authenticate),
    Ins.GET_DATA: (False, SecurityDomain._get_data),
    Ins.GET_DATA_ODD: (False, SecurityDomain._get_data),
    Ins.INSTALL: (True, SecurityDomain._install),
    Ins.DELETE: (True, SecurityDomain._delete),
    Ins.GET_STATUS: (True, SecurityDomain._get_status),
    Ins.SET_STATUS: (True, SecurityDomain._set_status),
    Ins.PUT_KEY: (True, SecurityDomain._put_key),
    Ins.STORE_DATA: (True, SecurityDomain._store_data),
}
