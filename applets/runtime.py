"""The secure element: applet registry, selection and the command boundary.

Every command runs as one transaction: the store commits if the applet
answers, and rolls back if it refuses (:class:`CardError`) or fails. Nothing
escapes :meth:`SecureElement.transmit` but a simulated power cut: a bug in an
applet answers 6F00 and is counted in ``internal_errors`` so that tests and
fuzzers can insist it stays zero.

Selection (ISO/IEC 7816-4 11.1.1): SELECT by DF name (P1=04) matches an AID
fully or by prefix; P2 b2-b1 = 10 moves to the next application that matches.
SELECT by file identifier or path (P1=00-03, 08, 09) walks the card's file
tree: the MF 3F00 and, under it, the DFs of the applications that have a
file identifier; :mod:`applets.mf` holds its rules.
Only the basic logical channel exists, as on most wearables' contactless
interface.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from applets import mf
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.errors import CardError, PowerLoss
from applets.iso7816 import Answer, Ins, Occurrence, Select, SelectBy, SelectFile
from applets.store import Store
from applets.sw import SW, wrong_le

Rng = Callable[[int], bytes]

_REGISTRY = "registry"
_DEACTIVATED = "crs/deactivated"
_log = logging.getLogger(__name__)


# GlobalPlatform life cycle states (GP Card Specification 2.3, 5.1 and 5.3).
INSTALLED, SELECTABLE, PERSONALIZED = 0x03, 0x07, 0x0F
LOCKED_BIT = 0x80
CARD_OP_READY, CARD_INITIALIZED, CARD_SECURED, CARD_LOCKED, CARD_TERMINATED = (
    0x01, 0x07, 0x0F, 0x7F, 0xFF)
#: Privilege byte 1 bits (GP 2.3 Table 6-1).
SECURITY_DOMAIN, CARD_LOCK, CARD_TERMINATE, DEFAULT_SELECTED = 0x80, 0x10, 0x08, 0x04


@dataclass(frozen=True, slots=True)
class Entry:
    """A registry entry: what the card manager knows of an application instance."""

    aid: bytes
    class_name: str
    lifecycle: int = SELECTABLE
    privileges: bytes = b"\x00\x00\x00"
    domain: bytes = b""  # the associated security domain, empty for the ISD itself

    @property
    def locked(self) -> bool:
        return bool(self.lifecycle & LOCKED_BIT) and self.lifecycle != CARD_TERMINATED

    @property
    def is_domain(self) -> bool:
        return bool(self.privileges[0] & SECURITY_DOMAIN)

    def to_json(self) -> list[object]:
        return [self.aid.hex().upper(), self.class_name, self.lifecycle,
                self.privileges.hex().upper(), self.domain.hex().upper()]

    @classmethod
    def from_json(cls, item: list[object]) -> Entry:
        aid, name, lifecycle, privileges, domain = item
        return cls(bytes.fromhex(str(aid)), str(name), int(str(lifecycle)),
                   bytes.fromhex(str(privileges)), bytes.fromhex(str(domain)))


@dataclass(frozen=True, slots=True)
class AppletContext:
    """What an applet instance gets from the runtime: its name, memory, randomness and card."""

    aid: bytes
    store: Store
    rng: Rng
    card: SecureElement

    @property
    def prefix(self) -> str:
        return f"app/{self.aid.hex().upper()}"


class Applet(ABC):
    """A card application. Persistent state lives in ``context.store`` only."""

    def __init__(self, context: AppletContext) -> None:
        self.context = context

    @property
    def aid(self) -> bytes:
        return self.context.aid

    # -- this instance's cells: every applet keeps its state under its own prefix ----

    def _cell(self, name: str) -> str:
        return f"{self.context.prefix}/{name}"

    def _get(self, name: str) -> bytes | None:
        return self.context.store.get(self._cell(name))

    def _put(self, name: str, value: bytes) -> None:
        self.context.store.put(self._cell(name), value)

    @abstractmethod
    def select(self, apdu: CommandAPDU) -> bytes:
        """Become the current application; return the FCI (or raise to refuse)."""

    def deselect(self) -> None:  # noqa: B027 - a hook; most applets keep no session
        """Forget volatile state (sessions); called on reselection and power-off."""

    @abstractmethod
    def process(self, apdu: CommandAPDU) -> bytes:
        """Handle one command; return response data or raise :class:`CardError`."""

    def store_data(self, dgi: int, data: bytes, last: bool) -> None:
        """Personalisation data forwarded by the application's security domain."""
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "this application takes no personalisation")

    # -- the application as a DF under the MF (SELECT by identifier or path, applets.mf) --

    @property
    def file_id(self) -> int | None:
        """The file identifier of the application's DF under the MF; None: by AID only."""
        return None

    def has_ef(self, fid: int) -> bool:
        """Whether the application's DF holds an EF with identifier ``fid``."""
        return False

    def select_ef(self, fid: int, answer: Answer) -> bytes:
        """Make EF ``fid`` the current EF; answer its control information as ``answer``
        asks. Called only for an ``fid`` that :meth:`has_ef` holds."""
        raise CardError(SW.FILE_NOT_FOUND, f"no EF {fid:04X}")

    def uninstall(self) -> None:
        """Erase every cell of this instance."""
        for key in self.context.store.keys(self.context.prefix + "/"):
            self.context.store.delete(key)


Catalogue = Mapping[str, type[Applet]]


class SecureElement:
    """A card holding several applets, driven one command APDU at a time."""

    def __init__(self, store: Store, rng: Rng, catalogue: Catalogue) -> None:
        self.store = store
        self._rng = rng
        self._catalogue = catalogue
        self._applets: dict[bytes, Applet] = {}
        self.selected: Applet | None = None
        self.internal_errors = 0
        self.power_on()

    # -- life cycle -------------------------------------------------------------

    def power_on(self) -> None:
        """Start from persistent memory alone, as after a field reset or a tear."""
        self.store.recover()
        self.selected = None
        self._applets = {entry.aid: self._instantiate(entry) for entry in self.entries()}
        default = next((e for e in self.entries() if e.privileges[0] & DEFAULT_SELECTED), None)
        if default is not None:
            self.selected = self._applets[default.aid]

    # -- the registry -----------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Registry entries in installation order (pending changes included)."""
        raw = self.store.get(_REGISTRY)
        return [Entry.from_json(item) for item in json.loads(raw)] if raw else []

    def entry(self, aid: bytes) -> Entry:
        for candidate in self.entries():
            if candidate.aid == aid:
                return candidate
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no application {aid.hex().upper()}")

    def _write_entries(self, entries: list[Entry]) -> None:
        self.store.put(_REGISTRY, json.dumps([e.to_json() for e in entries]).encode())

    @property
    def card_state(self) -> int:
        raw = self.store.get("card_state")
        return raw[0] if raw else CARD_SECURED

    def set_card_state(self, state: int) -> None:
        self.store.put("card_state", bytes((state,)))

    def _instantiate(self, entry: Entry) -> Applet:
        cls = self._catalogue.get(entry.class_name)
        if cls is None:
            raise ValueError(f"the card's image names applet class {entry.class_name!r}, "
                             f"which this build does not have")
        return cls(AppletContext(entry.aid, self.store, self._rng, self))

    def install(self, aid: bytes, class_name: str, privileges: bytes = b"\x00\x00\x00",
                domain: bytes = b"", lifecycle: int = SELECTABLE) -> Applet:
        """Register a new instance (pending until the command or caller commits)."""
        if not 5 <= len(aid) <= 16:
            raise CardError(SW.WRONG_DATA, "an AID has 5 to 16 bytes")
        if aid in self._applets:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"AID {aid.hex().upper()} exists")
        if class_name not in self._catalogue:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no applet class {class_name!r}")
        entry = Entry(aid, class_name, lifecycle, privileges, domain)
        self._write_entries([*self.entries(), entry])
        applet = self._instantiate(entry)
        self._applets[aid] = applet
        return applet

    def set_lifecycle(self, aid: bytes, lifecycle: int) -> None:
        self._write_entries([replace(e, lifecycle=lifecycle) if e.aid == aid else e
                             for e in self.entries()])

    def delete(self, aid: bytes) -> None:
        """Remove an instance and every cell it kept (pending until commit)."""
        applet = self.applet(aid)
        applet.uninstall()
        self._write_entries([e for e in self.entries() if e.aid != aid])
        if self.selected is applet:
            self.selected = None
        del self._applets[aid]

    def abort(self) -> None:
        """Drop pending writes and the instances they would have created or removed."""
        self.store.abort()
        current = {e.aid for e in self.entries()}
        if current != set(self._applets):
            selected = self.selected.aid if self.selected is not None else None
            self._applets = {e.aid: self._applets.get(e.aid) or self._instantiate(e)
                             for e in self.entries()}
            self.selected = self._applets.get(selected) if selected is not None else None

    # -- contactless activation (GP Amendment C) ---------------------------------------

    def deactivated(self) -> frozenset[bytes]:
        """Applications switched off for the contactless interface (the band's lock), which
        is apart from their life cycle: unlocking the band never undoes an issuer's lock."""
        raw = self.store.get(_DEACTIVATED)
        return frozenset(bytes.fromhex(aid) for aid in json.loads(raw)) if raw else frozenset()

    def set_deactivated(self, aids: frozenset[bytes]) -> None:
        self.store.put(_DEACTIVATED, json.dumps(sorted(aid.hex().upper() for aid in aids)).encode())

    def selectable(self) -> frozenset[bytes]:
        """The applications a reader may select now (life cycle, card lock and activation)."""
        card_locked = self.card_state in (CARD_LOCKED, CARD_TERMINATED)
        off = self.deactivated()
        return frozenset(e.aid for e in self.entries()
                         if not e.locked and e.lifecycle != INSTALLED and e.aid not in off
                         and (not card_locked or e.privileges[0] & DEFAULT_SELECTED))

    @property
    def applets(self) -> tuple[Applet, ...]:
        return tuple(self._applets.values())

    def applet(self, aid: bytes) -> Applet:
        try:
            return self._applets[aid]
        except KeyError:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no application {aid.hex().upper()}") from None

    # -- the command boundary -----------------------------------------------------

    def transmit(self, raw: bytes) -> bytes:
        """One C-APDU in, one R-APDU out; writes commit only on success."""
        try:
            apdu = CommandAPDU.parse(raw)
            data = self._dispatch(apdu)
            if apdu.ne is not None and not apdu.extended and len(data) > apdu.ne:
                raise CardError(wrong_le(len(data)), f"Le={apdu.ne}, {len(data)} available")
            self.store.commit()
            return ResponseAPDU(data, SW.OK).encode()
        except PowerLoss:
            raise
        except CardError as refusal:
            self.abort()
            return refusal.sw.to_bytes(2)
        except Exception:  # an applet bug must not look like a dead card
            self.abort()
            self.internal_errors += 1
            _log.exception("applet failed on %s", raw.hex().upper())
            return SW.UNKNOWN.to_bytes(2)

    def _dispatch(self, apdu: CommandAPDU) -> bytes:
        if apdu.cla == 0xFF:
            raise CardError(SW.CLA_NOT_SUPPORTED, "CLA FF is reserved for PTS")
        if apdu.ins & 0xF0 in (0x60, 0x90):
            raise CardError(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X} is invalid")
        if apdu.cla & 0x80 == 0 and apdu.channel != 0:
            raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED)
        if apdu.ins == Ins.SELECT and apdu.cla & 0x80 == 0 and apdu.p1 == SelectBy.DF_NAME:
            return self._select_by_name(apdu)
        if apdu.ins == Ins.SELECT and apdu.cla & 0x80 == 0:
            return self._select_file(apdu)
        if self.selected is None:
            if apdu.ins == Ins.SELECT:
                raise CardError(SW.FILE_NOT_FOUND, "no application is selected")
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no application is selected")
        return self.selected.process(apdu)

    def _select_by_name(self, apdu: CommandAPDU) -> bytes:
        select = Select.parse(apdu, occurrences=(Occurrence.FIRST, Occurrence.NEXT))
        selectable = self.selectable()
        matches = [app for app in self._applets.values()
                   if app.aid.startswith(select.name) and app.aid in selectable]
        if select.occurrence is Occurrence.NEXT and self.selected in matches:
            matches = matches[matches.index(self.selected) + 1 :]
        if not matches:
            raise CardError(SW.FILE_NOT_FOUND, f"no application {select.name.hex().upper()}")
        target = matches[0]
        if self.selected is not None:
            self.selected.deselect()
            self.selected = None
        fci = target.select(apdu)
        self.selected = target
        return b"" if select.answer is Answer.NONE else fci

    # -- the MF and the applications' DFs, by identifier or path (applets.mf) ------------

    def _select_file(self, apdu: CommandAPDU) -> bytes:
        select = SelectFile.parse(apdu)
        selectable = self.selectable()
        dfs: dict[int, Applet] = {}
        for app in self._applets.values():  # in installation order: the first keeps its FID
            fid = app.file_id
            if fid is not None and app.aid in selectable:
                dfs.setdefault(fid, app)
        target = mf.resolve(select, self.selected, dfs, lambda app, fid: app.has_ef(fid))
        if target.df is None:
            if self.selected is not None:
                self.selected.deselect()
                self.selected = None
            return mf.answer(select.answer)
        answer = b""
        if target.df is not self.selected or target.ef is None:
            if self.selected is not None:
                self.selected.deselect()
                self.selected = None
            answer = target.df.select(apdu)
            self.selected = target.df
        if target.ef is not None:
            return target.df.select_ef(target.ef, select.answer)
        return b"" if select.answer is Answer.NONE else answer
