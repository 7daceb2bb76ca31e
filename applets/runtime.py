"""The secure element: applet registry, selection and the command boundary.

Every command runs as one transaction: the store commits if the applet
answers, and rolls back if it refuses (:class:`CardError`) or fails. Nothing
escapes :meth:`SecureElement.transmit` but a simulated power cut: a bug in an
applet answers 6F00 and is counted in ``internal_errors`` so that tests and
fuzzers can insist it stays zero. An applet answers data (9000), or data with
a warning (62xx, 63xx: the command completed, its writes stand).

Selection (ISO/IEC 7816-4 11.1.1): SELECT by DF name (P1=04) matches an AID
fully or by prefix; P2 b2-b1 = 10 moves to the next application that matches;
no name at all (``00 A4 04 00 00``) selects the Issuer Security Domain
(GPCS 11.9.2.2). SELECT by file identifier or path (P1=00-03, 08, 09) walks the card's
file tree: the MF 3F00 and, under it, the DFs of the applications that have a file
identifier; :mod:`applets.mf` holds its rules.

Logical channels (ISO/IEC 7816-4 5.4.1 and 11.1.2, GPCS 11.1.4, and the Java
Card runtime's rules, JCRE 4.5-4.6): the basic channel and up to 19 more,
opened and closed with MANAGE CHANNEL, each with its own selected application;
a command on a channel that is not open answers 6881. An application is
active on one channel at a time unless its class is multi-selectable (Java
Card's ``MultiSelectable``; GlobalPlatform has no privilege for it): selecting
it on a second channel answers 6985. Applets read every command with the class
byte the basic channel would carry (:func:`~applets.iso7816.on_basic_channel`,
also what a C-MAC covers) and learn its channel from ``card.channel``.

Long answers (ISO/IEC 7816-4 5.1.3, 7816-3 12.2.3): an answer longer than Ne
leaves in parts, the first Ne bytes with 61xx and the rest by GET RESPONSE on
the same channel (the next other command drops what is left). A case 2
command whose whole answer fits a short Le, only not the one it sent, gets
6Cxx instead (wrong Le, xx the exact length) and none of its writes stand, so
the terminal sends it again. The band cannot tell which protocol a PC/SC
reader agreed (vpcd does not say, and ISO/IEC 14443-4 has no T=0), so every
link gets the same answers: 61xx parts serve T=0 and T=1 alike, and a command
with an extended Le gets the whole answer at once.

Channels, selections and a waiting answer live in RAM: a reset loses them.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

from applets import mf
from applets.apdu import SHORT_MAX_NE, CommandAPDU, ResponseAPDU
from applets.errors import CardError, PowerLoss
from applets.iso7816 import BASIC_CHANNEL, CHANNELS, Ins, ManageChannel, get_response_ne, on_basic_channel
from applets.registry import (
    CARD_LOCKED,
    CARD_SECURED,
    CARD_TERMINATED,
    DEFAULT_SELECTED,
    INSTALLED,
    SELECTABLE,
    Entry,
)
from applets.selection import Answer, Occurrence, Select, SelectBy, SelectFile, select
from applets.store import Store
from applets.sw import SW, bytes_remaining, is_warning, wrong_le

Rng = Callable[[int], bytes]
#: What an applet answers a command: its data (9000), or data and a warning status word.
Reply = bytes | ResponseAPDU

_REGISTRY = "registry"
_DEACTIVATED = "crs/deactivated"
_log = logging.getLogger(__name__)


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

    #: Whether the application may be selected on several logical channels at once; such
    #: an applet keeps its session state per channel (``context.card.channel``).
    multiselectable: ClassVar[bool] = False

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
        """Become the current application (on ``context.card.channel``); return the FCI
        (or raise to refuse)."""

    def deselect(self) -> None:  # noqa: B027 - a hook; most applets keep no session
        """Forget volatile state (sessions) of ``context.card.channel``; called on
        reselection, when that channel closes and at power-off."""

    @abstractmethod
    def process(self, apdu: CommandAPDU) -> Reply:
        """Handle one command; return response data (or data and a warning status word)
        or raise :class:`CardError`."""

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
        #: The open logical channels and the application selected on each (RAM).
        self._channels: dict[int, Applet | None] = {BASIC_CHANNEL: None}
        #: The logical channel of the command being run (applets key sessions by it).
        self.channel = BASIC_CHANNEL
        self._outgoing: _Outgoing | None = None
        self.internal_errors = 0
        self.power_on()

    # -- life cycle -------------------------------------------------------------

    def power_on(self) -> None:
        """Start from persistent memory alone, as after a field reset or a tear: the basic
        channel only, with the default application implicitly selected."""
        self.store.recover()
        self._applets = {entry.aid: self._instantiate(entry) for entry in self.entries()}
        self._channels = {BASIC_CHANNEL: self._default()}
        self.channel = BASIC_CHANNEL
        self._outgoing = None

    def _default(self) -> Applet | None:
        default = next((e for e in self.entries() if e.privileges[0] & DEFAULT_SELECTED), None)
        return None if default is None else self._applets[default.aid]

    # -- logical channels --------------------------------------------------------------

    @property
    def selected(self) -> Applet | None:
        """The application selected on the basic channel."""
        return self._channels[BASIC_CHANNEL]

    def selected_on(self, channel: int) -> Applet | None:
        """The application selected on logical ``channel`` (None also when it is closed)."""
        return self._channels.get(channel)

    @property
    def open_channels(self) -> tuple[int, ...]:
        return tuple(sorted(self._channels))

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
        for channel, selected in self._channels.items():
            if selected is applet:
                self._channels[channel] = None
        del self._applets[aid]

    def abort(self) -> None:
        """Drop pending writes and the instances they would have created or removed."""
        self.store.abort()
        current = {e.aid for e in self.entries()}
        if current != set(self._applets):
            self._applets = {e.aid: self._applets.get(e.aid) or self._instantiate(e)
                             for e in self.entries()}
            self._channels = {channel: None if selected is None
                              else self._applets.get(selected.aid)
                              for channel, selected in self._channels.items()}

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
        outgoing, self._outgoing = self._outgoing, None  # any command but GET RESPONSE drops it
        try:
            apdu = CommandAPDU.parse(raw)
            if apdu.ins == Ins.GET_RESPONSE and not apdu.cla & 0x80:
                return self._get_response(apdu, outgoing)
            reply = self._dispatch(apdu)
            data, sw = (reply.data, reply.sw) if isinstance(reply, ResponseAPDU) else (reply, SW.OK)
            if sw != SW.OK and not is_warning(sw):
                raise ValueError(f"an applet answered {sw:04X} instead of raising CardError")
            response = self._answer(apdu, data, sw)
            self.store.commit()
            return response
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

    # -- long answers (ISO/IEC 7816-4 5.1.3) ------------------------------------------------

    def _answer(self, apdu: CommandAPDU, data: bytes, sw: int) -> bytes:
        """The R-APDU of ``data`` and ``sw`` for ``apdu``: whole when it fits Ne (no Le:
        up to 256 bytes, as a T=1 card answers), else the first part and 61xx; 6Cxx when a
        case 2 command sent a short Le too small for an answer that would fit one."""
        ne = SHORT_MAX_NE if apdu.ne is None else apdu.ne
        if len(data) > ne and apdu.case == 2 and not apdu.extended and len(data) <= SHORT_MAX_NE:
            raise CardError(wrong_le(len(data)), f"Le={apdu.ne}, {len(data)} available")
        return self._part(apdu.channel, data, sw, ne)

    def _part(self, channel: int, data: bytes, sw: int, ne: int) -> bytes:
        if len(data) <= ne:
            return data + sw.to_bytes(2)
        self._outgoing = _Outgoing(channel, data[ne:], sw)
        return data[:ne] + bytes_remaining(len(data) - ne).to_bytes(2)

    def _get_response(self, apdu: CommandAPDU, outgoing: _Outgoing | None) -> bytes:
        if apdu.channel not in self._channels:
            raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED,
                            f"logical channel {apdu.channel} is not open")
        ne = get_response_ne(apdu)
        if outgoing is None or outgoing.channel != apdu.channel:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no answer waits for GET RESPONSE")
        return self._part(outgoing.channel, outgoing.data, outgoing.sw, ne)

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, apdu: CommandAPDU) -> Reply:
        if apdu.cla == 0xFF:
            raise CardError(SW.CLA_NOT_SUPPORTED, "CLA FF is reserved for PTS")
        if apdu.ins & 0xF0 in (0x60, 0x90):
            raise CardError(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X} is invalid")
        channel, interindustry = apdu.channel, not apdu.cla & 0x80
        if apdu.ins == Ins.MANAGE_CHANNEL and interindustry:
            return self._manage_channel(apdu, channel)
        if channel not in self._channels:
            raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, f"logical channel {channel} is not open")
        self.channel = channel
        command = replace(apdu, cla=on_basic_channel(apdu.cla))
        if command.ins == Ins.SELECT and interindustry and command.p1 == SelectBy.DF_NAME:
            return self._select_by_name(command, channel)
        if command.ins == Ins.SELECT and interindustry:
            return self._select_file(command, channel)
        selected = self._channels[channel]
        if selected is None:
            if command.ins == Ins.SELECT:
                raise CardError(SW.FILE_NOT_FOUND, "no application is selected")
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no application is selected")
        return selected.process(command)

    def _select_by_name(self, apdu: CommandAPDU, channel: int) -> bytes:
        select = Select.parse(apdu, occurrences=(Occurrence.FIRST, Occurrence.NEXT),
                              nameless=True)
        selectable = self.selectable()
        current = self._channels[channel]
        if not select.name and select.occurrence is Occurrence.FIRST:
            matches = [self._applets[e.aid] for e in self.entries()
                       if e.domain == b"" and e.is_domain and e.aid in selectable]
        else:
            matches = [app for app in self._applets.values()
                       if app.aid.startswith(select.name) and app.aid in selectable]
        if select.occurrence is Occurrence.NEXT and current in matches:
            matches = matches[matches.index(current) + 1 :]
        if not matches:
            raise CardError(SW.FILE_NOT_FOUND, f"no application {select.name.hex().upper()}")
        fci = self._select_on(channel, matches[0], apdu)
        return b"" if select.answer is Answer.NONE else fci

    # -- the MF and the applications' DFs, by identifier or path (applets.mf) ------------

    def _select_file(self, apdu: CommandAPDU, channel: int) -> bytes:
        select = SelectFile.parse(apdu)
        selectable = self.selectable()
        dfs: dict[int, Applet] = {}
        for app in self._applets.values():  # in installation order: the first keeps its FID
            fid = app.file_id
            if fid is not None and app.aid in selectable:
                dfs.setdefault(fid, app)
        current = self._channels[channel]
        target = mf.resolve(select, current, dfs, lambda app, fid: app.has_ef(fid))
        if target.df is None:
            self._deselect(channel)
            return mf.answer(select.answer)
        answer = b""
        if target.df is not current or target.ef is None:
            answer = self._select_on(channel, target.df, apdu)
        if target.ef is not None:
            return target.df.select_ef(target.ef, select.answer)
        return b"" if select.answer is Answer.NONE else answer

    def _select_on(self, channel: int, target: Applet, apdu: CommandAPDU) -> bytes:
        elsewhere = any(selected is target for other, selected in self._channels.items()
                        if other != channel)
        if elsewhere and not target.multiselectable:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED,
                            f"{target.aid.hex().upper()} is selected on another logical channel "
                            f"and is not multi-selectable")
        self._deselect(channel)
        self.channel = channel
        fci = target.select(apdu)
        self._channels[channel] = target
        return fci

    def _deselect(self, channel: int) -> None:
        selected = self._channels[channel]
        if selected is not None:
            self.channel = channel
            self._channels[channel] = None
            selected.deselect()

    def _manage_channel(self, apdu: CommandAPDU, origin: int) -> Reply:
        """MANAGE CHANNEL as a Java Card runtime runs it (JCRE 4.5.1, 4.6.1)."""
        request = ManageChannel.parse(apdu)
        if origin not in self._channels:
            raise CardError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED, f"logical channel {origin} is not open")
        if request.close:
            if request.channel not in self._channels:
                return ResponseAPDU(b"", SW.WARNING_NO_INFORMATION)  # closed already
            self._deselect(request.channel)
            del self._channels[request.channel]
            return b""
        number = request.channel or next(
            (n for n in range(BASIC_CHANNEL + 1, CHANNELS) if n not in self._channels), None)
        if number is None:
            raise CardError(SW.FUNCTION_NOT_SUPPORTED, "every logical channel is open")
        if number in self._channels:
            raise CardError(SW.INCORRECT_P1_P2, f"logical channel {number} is open already")
        # From the basic channel the new one gets the default application, from another
        # channel that channel's application (JCRE 4.5.1 step 7).
        candidate = self._default() if origin == BASIC_CHANNEL else self._channels[origin]
        if candidate is not None and candidate.aid not in self.selectable():
            candidate = None
        self._channels[number] = None
        if candidate is not None:
            try:
                self._select_on(number, candidate, select(candidate.aid))
            except CardError as refusal:
                del self._channels[number]
                if refusal.sw == SW.CONDITIONS_NOT_SATISFIED:
                    raise
                raise CardError(SW.APPLET_SELECT_FAILED, refusal.reason) from refusal
        return b"" if request.channel else bytes((number,))


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """The rest of an answer that did not fit, waiting for GET RESPONSE on ``channel``."""

    channel: int
    data: bytes
    sw: int
