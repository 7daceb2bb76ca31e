"""The phone's side of BLE on bleak: finds a band, connects, pairs, reads, writes and subscribes.

:class:`BandCentral` is the GATT client of the band's service (:mod:`ble.spec`)
written once against bleak's public API, so the same code runs on the
operating system's stack (BlueZ, CoreBluetooth, WinRT, Android: bleak's own
backends) and on a Bumble controller (our backend,
:mod:`phone.ble.bumble_backend`), as :class:`Backend` says. It translates
bleak's errors into :mod:`ble.errors`. The link's security is the stack's:
the band refuses everything but its info over a link that is not encrypted,
and pairing (:meth:`BandCentral.pair`) is whatever the stack does to
encrypt it: the OS's own dialog, or numeric comparison on ours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from ble import spec
from ble.errors import (
    BleError,
    CharacteristicRefused,
    EncryptionRequired,
    LinkPairingFailed,
    NotConnected,
)

__all__ = ["Backend", "BandAdvertisement", "BandCentral"]

_T = TypeVar("_T")

_ENCRYPTION_ERRORS = frozenset({
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
})


@dataclass(frozen=True, slots=True)
class Backend:
    """The bleak backend the central runs on: bleak's own for this operating system (the
    default), or another one and the options it takes (``BleakScanner(backend=…, **options)``)."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BandAdvertisement:
    """A band seen on air: its address, and its name (complete, or shortened if that is all we saw)."""

    device: BLEDevice
    name: str
    rssi: int

    @property
    def address(self) -> str:
        """The band's Bluetooth address (on macOS, the UUID CoreBluetooth gives it)."""
        return self.device.address


class BandCentral:
    """The phone's side of BLE: finds a band, connects, pairs, and uses its service.

    Every operation raises :class:`~ble.errors.BleError` (or a subclass) with
    what went wrong: :class:`NotConnected`, :class:`LinkPairingFailed`,
    :class:`EncryptionRequired` for a protected characteristic on a link that is
    not encrypted, :class:`CharacteristicRefused` for any other ATT error.
    bleak's error is the ``__cause__``. bleak's disconnect callback tells it when
    the band (or the air) ends the link: :meth:`wait_disconnected` returns then,
    so a relay waiting for the band's answer ends at once instead of timing out.
    """

    def __init__(self, backend: Backend | None = None) -> None:
        self.backend = backend or Backend()
        self._client: BleakClient | None = None
        self._characteristics: dict[str, BleakGATTCharacteristic] = {}
        self._disconnected = asyncio.Event()
        self._disconnected.set()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    @property
    def mtu(self) -> int:
        """The link's ATT MTU as the stack reports it (BlueZ always says 23: see :attr:`payload`)."""
        return self._require().mtu_size

    @property
    def payload(self) -> int:
        """The bytes one relay-in write carries: what the stack says fits one Write Command."""
        self._require()
        return self._characteristics[spec.RELAY_IN.name].max_write_without_response_size

    async def find_band(self, timeout: float = 10.0) -> BandAdvertisement:
        """Scan until a device advertises the Koala band service; return the first one."""
        found: asyncio.Future[BandAdvertisement] = asyncio.get_running_loop().create_future()

        def on_advertisement(device: BLEDevice, data: AdvertisementData) -> None:
            if not found.done():
                found.set_result(BandAdvertisement(device, data.local_name or device.name or "",
                                                   data.rssi))

        scanner = BleakScanner(on_advertisement, [spec.SERVICE], backend=self.backend.scanner,
                               **self.backend.options)
        try:
            await self._bleak("scanning", scanner.start)
            try:
                return await asyncio.wait_for(found, timeout)
            finally:
                await self._bleak("scanning", scanner.stop)
        except TimeoutError as exc:
            raise BleError(f"no Koala band advertised within {timeout:g} s: is it awake "
                           f"and not connected to another phone?") from exc

    async def connect(self, band: BandAdvertisement, *, timeout: float = 10.0) -> None:
        """Connect (the stack exchanges the ATT MTU) and discover the band's service.

        Discovery needs no encryption; what the characteristics hold does.
        """
        if self._client is not None:
            raise BleError("the companion is already connected to a band; disconnect first")
        client = BleakClient(band.device, self._on_disconnected, [spec.SERVICE], timeout=timeout,
                             backend=self.backend.client, **self.backend.options)
        try:
            await client.connect()
        except (BleakError, OSError) as exc:  # TimeoutError is an OSError
            raise BleError(f"could not connect to the band at {band.address}: {exc}") from exc
        self._client = client
        self._disconnected.clear()
        try:
            self._characteristics = self._discovered(client)
        except BaseException:
            await self.disconnect()
            raise

    @staticmethod
    def _discovered(client: BleakClient) -> dict[str, BleakGATTCharacteristic]:
        service = client.services.get_service(spec.SERVICE)
        if service is None:
            raise BleError(f"{client.address} does not offer the Koala band service: is it a band?")
        found = {}
        for c in spec.CHARACTERISTICS:
            characteristic = service.get_characteristic(c.uuid)
            if characteristic is None:
                raise BleError(f"the band's service lacks the {c.name} characteristic: "
                               f"is its firmware older than this companion?")
            found[c.name] = characteristic
        return found

    def _on_disconnected(self, client: BleakClient) -> None:
        """bleak's disconnect callback: the band left (or the air lost it), not us."""
        if self._client is client:
            self._forget()

    def _forget(self) -> None:
        self._client = None
        self._characteristics = {}
        self._disconnected.set()

    async def disconnect(self) -> None:
        if (client := self._client) is not None:
            self._forget()
            with contextlib.suppress(BleakError):  # gone already: nothing left to end
                await client.disconnect()

    async def wait_disconnected(self) -> None:
        """Return once there is no link (at once if there is none): the band left, or we did."""
        await self._disconnected.wait()

    async def pair(self, timeout: float = 30.0) -> None:
        """Encrypt the link: with the bond of an earlier pairing, else by pairing (bonded).

        On our Bumble backend that is LE Secure Connections numeric comparison,
        where both people must say yes; on an OS stack it is the OS's pairing (BlueZ
        asks its agent; CoreBluetooth has no pairing call and pairs at the first
        protected read or subscription).
        ``timeout`` is the SMP transaction timer (Core spec Vol 3 Part H 3.4):
        after it, pairing on this link is over; disconnect and try again.
        """
        client = self._require()
        try:
            await asyncio.wait_for(client.pair(), timeout)
        except NotImplementedError:
            return  # CoreBluetooth: it pairs by itself when a protected characteristic is used
        except TimeoutError as exc:
            raise LinkPairingFailed(f"pairing with the band did not finish within {timeout:g} s: "
                                    f"disconnect and pair again", "TIMEOUT") from exc
        except BleakError as exc:
            if not self.connected:
                raise NotConnected("the band disconnected during pairing") from exc
            # Backends name the failure first (an SMP reason, a D-Bus error), then explain it.
            reason, *why = exc.args or ("UNKNOWN",)
            raise LinkPairingFailed(f"pairing with the band failed: {why[0] if why else reason}",
                                    str(reason)) from exc

    async def read_band_info(self) -> bytes:
        return await self._read(spec.BAND_INFO)

    async def read_card_list(self) -> bytes:
        return await self._read(spec.CARD_LIST)

    async def write_control(self, data: bytes) -> None:
        await self._write(spec.CONTROL_POINT, data, response=True)

    async def write_relay(self, data: bytes, *, response: bool = True) -> None:
        """Write one relay-in fragment: with response (returns once the band has it), or as a
        Write Command (returns once the stack has queued it; the band may never see it)."""
        await self._write(spec.RELAY_IN, data, response=response)

    async def subscribe_relay(self, on_data: Callable[[bytes], None]) -> None:
        """Call ``on_data`` with every relay-out notification (one app-layer fragment each)."""
        await self._subscribe(spec.RELAY_OUT, lambda _c, value: on_data(bytes(value)))

    async def subscribe_card_list(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` when the band's card list changes; :meth:`read_card_list` reads it."""
        await self._subscribe(spec.CARD_LIST, lambda _c, _value: on_change())

    async def _subscribe(self, c: spec.Characteristic,
                         callback: Callable[[BleakGATTCharacteristic, bytearray], None]) -> None:
        client = self._require()
        await self._gatt(f"subscribing to {c.name}", c,
                         lambda: client.start_notify(self._characteristics[c.name], callback))

    async def _read(self, c: spec.Characteristic) -> bytes:
        client = self._require()
        return bytes(await self._gatt(f"reading {c.name}", c,
                                      lambda: client.read_gatt_char(self._characteristics[c.name])))

    async def _write(self, c: spec.Characteristic, data: bytes, *, response: bool) -> None:
        client = self._require()
        characteristic = self._characteristics[c.name]
        limit = characteristic.max_write_without_response_size
        if len(data) > limit:
            # A stack would switch to a prepared (long) write; the relay is fragmented above us.
            raise ValueError(f"a {c.name} write carries at most {limit} bytes at ATT MTU "
                             f"{client.mtu_size}, got {len(data)}: fragment it")
        await self._gatt(f"writing {c.name}", c,
                         lambda: client.write_gatt_char(characteristic, data, response=response))

    def _require(self) -> BleakClient:
        if self._client is None or not self._client.is_connected:
            raise NotConnected("the companion is not connected to a band: connect first")
        return self._client

    async def _gatt(self, what: str, c: spec.Characteristic,
                    operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run one GATT operation with bleak's errors translated."""
        try:
            return await operation()
        except BleakGATTProtocolError as exc:
            if exc.code in _ENCRYPTION_ERRORS:
                raise EncryptionRequired(f"the band refused {what}: {c.name} needs an encrypted "
                                         f"link ({exc.code.name}); pair first", c.name,
                                         exc.code) from exc
            raise CharacteristicRefused(f"the band refused {what}: ATT error {exc.code.name}",
                                        c.name, exc.code) from exc
        except BleakError as exc:
            if not self.connected:
                raise NotConnected(f"the band disconnected during {what}") from exc
            raise BleError(f"{what} failed: {exc}") from exc

    @staticmethod
    async def _bleak(what: str, operation: Callable[[], Awaitable[None]]) -> None:
        """Start or stop a scan; an OS stack that is not there (no BlueZ on the system bus)
        raises OSError, not BleakError."""
        try:
            await operation()
        except OSError as exc:
            raise BleError(f"{what} failed: the system's Bluetooth service does not answer "
                           f"({exc}): is there a Bluetooth adapter, and is it on?") from exc
        except BleakError as exc:
            raise BleError(f"{what} failed: {exc}: is the Bluetooth adapter on?") from exc
