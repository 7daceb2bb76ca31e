"""``$KOALA_HOME``: everything the ``koala`` command keeps, in one directory.

::

    $KOALA_HOME/                (default ~/.koala)
      bands/NAME.band           band images (written atomically, checksummed)
      bands/NAME.lock           held by the one process changing the band
      bands/NAME.issuer.json    the band's registration at an issuer: URL, id, device token
      terminals/ID.json         a terminal's PSAM sequence number
      terminals/ID.jsonl        its outbox: its transaction records, one JSON line each
      terminals/ID.sent         how much of the outbox the stream has acknowledged

Two worlds side by side are two directories.

One process at a time changes a band: :meth:`Home.changing` holds the band's
lock, saves its image to the file it came from after every command that
changed the card (before that answer leaves the band, so a process killed
at any instant loses nothing a card answered), and once more at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.files import atomic_write
from common.home import default_root
from reader.outbox import Outbox, OutboxError, document, outboxes
from reader.outbox import record as outbox_record
from reader.record import EcashPurchase, LoadRecord, PurchaseRecord, R, from_json, to_json
from wallet.band import Band
from wallet.errors import BandBusy, WalletError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
LOCK_WAIT_S = 10.0  # how long a command waits for another process to finish with a band


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise WalletError(f"band name {name!r} must be 1-32 letters, digits, '.', '_' or '-'")
    return name


class NotRegistered(WalletError):
    """The band has no issuer link: it was never registered (or the link was removed)."""


@contextlib.contextmanager
def _damaged(path: Path, remedy: str) -> Iterator[None]:
    """Reading a small JSON file the command keeps: anything wrong in it is one line, naming
    the file and what to do, instead of a traceback."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise WalletError(f"{path} is damaged ({type(error).__name__}: {error}); {remedy}") \
            from None


@dataclass(frozen=True, slots=True)
class IssuerLink:
    """Where a band is registered and the token its companion uses there."""

    url: str
    band_id: int
    device_token: str


@dataclass(frozen=True, slots=True)
class PhoneBond:
    """What the phone keeps of its pairing with a band: its own id and the app-layer key."""

    phone_id: bytes
    key: bytes


class Home:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()

    # -- bands ------------------------------------------------------------------------

    def band_path(self, name: str) -> Path:
        return self.root / "bands" / f"{check_name(name)}.band"

    def band_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "bands").glob("*.band"))

    def load_band(self, name: str) -> Band:
        path = self.band_path(name)
        if not path.exists():
            known = ", ".join(self.band_names()) or "none yet: koala band create NAME"
            raise WalletError(f"no band named {name!r} (bands: {known})")
        band = Band.load(path)
        if band.name != name:
            raise WalletError(f"{path} holds the image of band {band.name!r}, not {name!r}: "
                              f"refused (move it back to {band.name}.band)")
        return band

    def save_band(self, band: Band) -> None:
        band.save(self.band_path(band.name))

    @contextlib.contextmanager
    def changing(self, name: str, wait: float = LOCK_WAIT_S) -> Iterator[Band]:
        """The band for this process alone, saved after each command that changes it."""
        path = self.band_path(name)
        with self._locked(name, wait):
            band = self.load_band(name)
            band.on_change = lambda changed: changed.save(path)
            try:
                yield band
            finally:
                band.on_change = None
                band.save(path)

    @contextlib.contextmanager
    def _locked(self, name: str, wait: float) -> Iterator[None]:
        path = self.root / "bands" / f"{check_name(name)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "?"
                        raise BandBusy(f"band {name!r} is in use by another koala process "
                                          f"(pid {holder}): try again when it is done") from None
                    time.sleep(0.02)
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def issuer_link(self, name: str) -> IssuerLink:
        path = self._link_path(name)
        if not path.exists():
            raise NotRegistered(f"band {name!r} is not registered with an issuer: "
                                f"koala band register {name}")
        with _damaged(path, f"register the band again: koala band register {name}"):
            raw = json.loads(path.read_text())
            return IssuerLink(str(raw["url"]), int(raw["band_id"]), str(raw["device_token"]))

    def save_issuer_link(self, name: str, link: IssuerLink) -> None:
        """Kept readable by the owner only: the device token speaks for the band."""
        atomic_write(self._link_path(name), json.dumps(asdict(link)).encode())  # mode 0600

    def _link_path(self, name: str) -> Path:
        return self.root / "bands" / f"{check_name(name)}.issuer.json"

    # -- the phone's side of a BLE pairing -------------------------------------------------------

    def phone_bond(self, name: str) -> PhoneBond | None:
        path = self._bond_path(name)
        if not path.exists():
            return None
        with _damaged(path, f"pair again: koala companion pair --band {name}"):
            raw = json.loads(path.read_text())
            return PhoneBond(bytes.fromhex(raw["phone_id"]), bytes.fromhex(raw["key"]))

    def save_phone_bond(self, name: str, bond: PhoneBond) -> None:
        """Kept readable by the owner only: the key speaks for the phone."""
        document = {"phone_id": bond.phone_id.hex(), "key": bond.key.hex()}
        atomic_write(self._bond_path(name), json.dumps(document).encode())  # mode 0600

    def link_keys(self, name: str) -> tuple[Path, Path]:
        """Where the band and the phone keep their Bluetooth link bonds with each other."""
        return (self.root / "bands" / f"{check_name(name)}.ble-keys.json",
                self.root / "phone" / f"{check_name(name)}.ble-keys.json")

    def _bond_path(self, name: str) -> Path:
        return self.root / "phone" / f"{check_name(name)}.bond.json"

    # -- terminals ---------------------------------------------------------------------------

    def _terminal(self, terminal_id: bytes, suffix: str) -> Path:
        return self.root / "terminals" / f"{terminal_id.hex().upper()}{suffix}"

    def terminal_seq(self, terminal_id: bytes) -> int:
        path = self._terminal(terminal_id, ".json")
        return int(json.loads(path.read_text())["seq"]) if path.exists() else 0

    def save_terminal(self, terminal_id: bytes, seq: int,
                      records: Sequence[PurchaseRecord | LoadRecord]) -> None:
        """Persist the PSAM sequence and keep new records for clearing in the terminal's
        outbox (:mod:`reader.outbox`). A tap that moved nothing writes nothing."""
        if seq != self.terminal_seq(terminal_id):
            atomic_write(self._terminal(terminal_id, ".json"), json.dumps({"seq": seq}).encode())
        Outbox(self.outbox_dir, terminal_id).append(records)

    @property
    def outbox_dir(self) -> Path:
        """Where the terminals keep their outboxes (:mod:`reader.outbox`)."""
        return self.root / "terminals"

    def save_pos_record(self, purchase: EcashPurchase) -> None:
        """Keep a POS's offline e-cash purchase for clearing (appended, then fsynced)."""
        path = self.root / "pos" / "purchases.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(json.dumps(to_json(purchase)) + "\n")
            log.flush()
            os.fsync(log.fileno())

    def pos_records(self) -> list[EcashPurchase]:
        return [_from_json(EcashPurchase, data, where)
                for where, data in _lines(self.root / "pos" / "purchases.jsonl")]

    def terminal_records(self) -> Iterator[PurchaseRecord | LoadRecord]:
        """The terminals' records, without the terminals' notes (a line of a kind that is not
        for clearing is left aside)."""
        try:
            for box in outboxes(self.outbox_dir):
                for where, data in box.records():
                    kept = outbox_record(data, where)
                    if kept is not None:
                        yield kept
        except OutboxError as error:
            raise WalletError(str(error)) from None


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The JSON objects of a file of records, one a line, each with where it is."""
    if not path.exists():
        return
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        where = f"{path}, line {number}"
        try:
            yield where, document(line, where)
        except OutboxError as error:
            raise WalletError(str(error)) from None


def _from_json(kind: type[R], data: dict[str, Any], where: str) -> R:
    try:
        return from_json(kind, data)
    except ValueError as error:
        raise WalletError(f"{where}: not a record for clearing ({error})") from None
