"""The secure element: applet registry, selection and the command boundary.

Every command runs as one transaction: the store commits if the applet
answers, and rolls back if it refuses (:class:`CardError`) or fails. Nothing
escapes :meth:`SecureElement.transmit` but a simulated power cut: a bug in an
applet answers 6F00 and is counted in ``internal_errors`` so that tests and
fuzzers can insist it stays zero.

Selection (ISO/IEC 7816-4 11.1.1): SELECT by DF name (P1=04) matches an AID
fully or by prefix; P2 b2-b1 = 10 moves to the next application that matches.
Only the basic logical channel exists, as on most wearables' contactless
interface.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from applets.apdu import CommandAPDU, MalformedAPDU, ResponseAPDU
from applets.errors import CardError, PowerLoss
from applets.store import Store
from applets.sw import SW, wrong_le

Rng = Callable[[int], bytes]

_REGISTRY = "registry"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppletContext:
    """What an applet instance gets from the runtime: its name, memory and randomness."""

    aid: bytes
    store: Store
    rng: Rng

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

    @abstractmethod
    def select(self, apdu: CommandAPDU) -> bytes:
        """Become the current application; return the FCI (or raise to refuse)."""

    def deselect(self) -> None:  # noqa: B027 - a hook; most applets keep no session
        """Forget volatile state (sessions); called on reselection and power-off."""

    @abstractmethod
    def process(self, apdu: CommandAPDU) -> bytes:
        """Handle one command; return response data or raise :class:`CardError`."""

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
        self._applets: list[Applet] = []
        self.selected: Applet | None = None
        self.internal_errors = 0
        self.power_on()

    # -- life cycle -------------------------------------------------------------

    def power_on(self) -> None:
        """Start from persistent memory alone, as after a field reset or a tear."""
        self.store.recover()
        self.selected = None
        self._applets = [self._instantiate(aid, cls) for aid, cls in self._registry()]

    def _registry(self) -> list[tuple[bytes, str]]:
        raw = self.store.get(_REGISTRY)
        return [(bytes.fromhex(a), c) for a, c in json.loads(raw)] if raw else []

    def _instantiate(self, aid: bytes, class_name: str) -> Applet:
        cls = self._catalogue.get(class_name)
        if cls is None:
            raise ValueError(f"the card's image names applet class {class_name!r}, "
                             f"which this build does not have")
        return cls(AppletContext(aid, self.store, self._rng))

    def install(self, aid: bytes, class_name: str) -> Applet:
        """Register a new instance (pending until the command or caller commits)."""
        if not 5 <= len(aid) <= 16:
            raise CardError(SW.WRONG_DATA, "an AID has 5 to 16 bytes")
        if any(app.aid == aid for app in self._applets):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, f"AID {aid.hex().upper()} exists")
        if class_name not in self._catalogue:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no applet class {class_name!r}")
        entries = [(a.hex().upper(), c) for a, c in self._registry()]
        entries.append((aid.hex().upper(), class_name))
        self.store.put(_REGISTRY, json.dumps(entries).encode())
        applet = self._instantiate(aid, class_name)
        self._applets.append(applet)
        return applet

    @property
    def applets(self) -> tuple[Applet, ...]:
        return tuple(self._applets)

    def applet(self, aid: bytes) -> Applet:
        for app in self._applets:
            if app.aid == aid:
                return app
        raise KeyError(f"no applet {aid.hex().upper()}")

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
            self.store.abort()
            return refusal.sw.to_bytes(2)
        except Exception:  # an applet bug must not look like a dead card
            self.store.abort()
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
        if apdu.ins == 0xA4 and apdu.cla & 0x80 == 0 and apdu.p1 == 0x04:
            return self._select_by_name(apdu)
        if self.selected is None:
            if apdu.ins == 0xA4:
                raise CardError(SW.FILE_NOT_FOUND, "no application is selected")
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no application is selected")
        return self.selected.process(apdu)

    def _select_by_name(self, apdu: CommandAPDU) -> bytes:
        if apdu.p2 & 0xF0 or apdu.p2 & 0x03 not in (0x00, 0x02):
            raise CardError(SW.INCORRECT_P1_P2, "SELECT P2 supports first and next occurrence")
        if not 1 <= len(apdu.data) <= 16:
            raise MalformedAPDU("a DF name has 1 to 16 bytes", 5)
        matches = [app for app in self._applets if app.aid.startswith(apdu.data)]
        if apdu.p2 & 0x02 and self.selected in matches:
            matches = matches[matches.index(self.selected) + 1 :]
        if not matches:
            raise CardError(SW.FILE_NOT_FOUND, f"no application {apdu.data.hex().upper()}")
        target = matches[0]
        if self.selected is not None:
            self.selected.deselect()
            self.selected = None
        fci = target.select(apdu)
        self.selected = target
        return b"" if apdu.p2 & 0x0C == 0x0C else fci
