"""The phone's side of BLE: finds a band, connects, pairs, reads, writes and subscribes.

:class:`CompanionCentral` is the GATT client of the band's service
(:mod:`ble.spec`) on a Bumble host, under the pairing policy both sides share
(:mod:`ble.link`). It translates Bumble's errors into :mod:`ble.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bumble import att, smp
from bumble.core import UUID as BumbleUUID
from bumble.core import AdvertisingData, BaseBumbleError, ProtocolError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address
from bumble.host import Host

from ble import spec
from ble.errors import (
    BleError,
    CharacteristicRefused,
    EncryptionRequired,
    LinkPairingFailed,
    NotConnected,
)
from ble.link import (
    ATT_MTU,
    ConfirmNumber,
    OneLink,
    device_config,
    keep_bonds,
    numeric_comparison_only,
)

__all__ = ["BandAdvertisement", "CompanionCentral"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_ENCRYPTION_ERRORS = frozenset({
    att.ErrorCode.INSUFFICIENT_ENCRYPTION,
    att.ErrorCode.INSUFFICIENT_AUTHENTICATION,
    att.ErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
})
_PAIRING_FAILURES: dict[int | None, str] = {
    smp.ErrorCode.CONFIRM_VALUE_FAILED: "the numbers were not confirmed on both sides "
                                        "(someone said no, or they differed)",
    smp.ErrorCode.NUMERIC_COMPARISON_FAILED: "the numbers were not confirmed on both sides",
    smp.ErrorCode.AUTHENTICATION_REQUIREMENTS: "the peer cannot do LE Secure Connections with "
                                               "numeric comparison, the only pairing allowed",
    smp.ErrorCode.PAIRING_NOT_SUPPORTED: "the peer refused to pair",
}


@dataclass(frozen=True, slots=True)
class BandAdvertisement:
    """A band seen on air: its address, and its name (complete, or shortened if that is all we saw)."""

    address: Address
    name: str
    rssi: int


def _band_in(advertisement: Advertisement) -> BandAdvertisement | None:
    data = advertisement.data
    uuids = [*(data.get(AdvertisingData.Type.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []),
             *(data.get(AdvertisingData.Type.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or [])]
    if BumbleUUID(spec.SERVICE) not in uuids:
        return None
    name = (data.get(AdvertisingData.Type.COMPLETE_LOCAL_NAME)
            or data.get(AdvertisingData.Type.SHORTENED_LOCAL_NAME) or "")
    return BandAdvertisement(advertisement.address, name, advertisement.rssi)


class CompanionCentral(OneLink):
    """The phone's side of BLE: finds a band, connects, pairs, and uses its service.

    Every operation raises :class:`~ble.errors.BleError` (or a
    subclass) with what went wrong: :class:`NotConnected`,
    :class:`LinkPairingFailed`, :class:`EncryptionRequired` for a protected
    characteristic on an unpaired link, :class:`CharacteristicRefused`
    for any other ATT error. The Bumble error is the ``__cause__``.
    """

    _unconnected = "the companion is not connected to a band: connect first"

    def __init__(self, host: Host, *, address: str, confirm_number: ConfirmNumber,
                 name: str = "Koala companion", keystore: Path | None = None) -> None:
        self.device = Device(config=device_config(name, address), host=host)
        keep_bonds(self.device, address, keystore)
        numeric_comparison_only(self.device, confirm_number)
        self._connection: Connection | None = None
        self._characteristics: dict[str, CharacteristicProxy[bytes]] = {}
        self._disconnected = asyncio.Event()
        self._disconnected.set()

    async def start(self) -> None:
        await self.device.power_on()

    async def stop(self) -> None:
        """Disconnect (if connected) and power off."""
        await self.disconnect()
        await self.device.power_off()

    async def find_band(self, timeout: float = 10.0) -> BandAdvertisement:
        """Scan until a device advertises the Koala band service; return the first one."""
        found: asyncio.Future[BandAdvertisement] = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            if not found.done() and (band := _band_in(advertisement)) is not None:
                found.set_result(band)

        self.device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
        try:
            await self.device.start_scanning()
            return await asyncio.wait_for(found, timeout)
        except TimeoutError as exc:
            raise BleError(f"no Koala band advertised within {timeout:g} s: is it awake "
                           f"and not connected to another phone?") from exc
        finally:
            self.device.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)
            await self.device.stop_scanning()

    async def connect(self, address: Address, *, mtu: int | None = ATT_MTU,
                      timeout: float = 10.0) -> None:
        """Connect, exchange the ATT MTU (unless ``mtu`` is None), and discover the service.

        Discovery needs no encryption; what the characteristics hold does.
        """
        if self._connection is not None:
            raise BleError("the companion is already connected to a band; disconnect first")
        try:
            connection = await self.device.connect(address, timeout=timeout)
        except (BaseBumbleError, TimeoutError) as exc:
            raise BleError(f"could not connect to the band at {address}: {exc}") from exc
        self._connection = connection
        self._disconnected.clear()

        def on_disconnection(_reason: int) -> None:
            if self._connection is connection:
                self._connection = None
                self._characteristics = {}
            self._disconnected.set()

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)
        try:
            if mtu is not None:
                spec.payload_size(mtu)
                peer = Peer(connection)
                await self._call("the MTU exchange", lambda: peer.request_mtu(mtu))
            await self._discover(connection)
        except BaseException:
            await self.disconnect()
            raise

    async def _discover(self, connection: Connection) -> None:
        peer = Peer(connection)
        services = await self._call("service discovery",
                                    lambda: peer.discover_service(spec.SERVICE))
        if not services:
            raise BleError(f"{connection.peer_address} does not offer the Koala band service: "
                           f"is it a band?")
        await self._call("characteristic discovery", services[0].discover_characteristics)
        found = {}
        for c in spec.CHARACTERISTICS:
            proxies = services[0].get_characteristics_by_uuid(BumbleUUID(c.uuid))
            if not proxies:
                raise BleError(f"the band's service lacks the {c.name} characteristic: "
                               f"is its firmware older than this companion?")
            found[c.name] = proxies[0]
        self._characteristics = found

    async def disconnect(self) -> None:
        if (connection := self._connection) is not None:
            self._connection = None
            self._characteristics = {}
            await connection.disconnect()

    async def wait_disconnected(self) -> None:
        """Return once there is no link (at once if there is none): the band left, or we did."""
        await self._disconnected.wait()

    async def secure(self, timeout: float = 30.0) -> None:
        """Encrypt the link with the bond of an earlier pairing; pair when there is none, or
        when the band no longer has it."""
        connection = self._require_connection()
        keystore = self.device.keystore
        bonded = keystore is not None and await keystore.get(str(connection.peer_address))
        if bonded:
            try:
                await asyncio.wait_for(connection.encrypt(), timeout)
            except (BaseBumbleError, TimeoutError) as exc:
                _log.info("the band did not take our bond (%s): pairing again", exc)
            if connection.is_encrypted:
                return
        await self.pair(timeout)

    async def pair(self, timeout: float = 30.0) -> None:
        """Pair (LE Secure Connections, numeric comparison, bonded); both people must say yes.

        ``timeout`` is the SMP transaction timer (Core spec Vol 3 Part H 3.4):
        after it, pairing on this link is over; disconnect and try again.
        """
        connection = self._require_connection()
        try:
            await self._call("pairing", lambda: asyncio.wait_for(connection.pair(), timeout))
        except ProtocolError as exc:
            why = _PAIRING_FAILURES.get(exc.error_code, f"SMP error {exc.error_name}")
            raise LinkPairingFailed(f"pairing with the band failed: {why}", str(exc.error_name)) from exc
        except TimeoutError as exc:
            raise LinkPairingFailed(f"pairing with the band did not finish within {timeout:g} s: "
                                f"disconnect and pair again", "TIMEOUT") from exc
        if not connection.is_encrypted:
            raise LinkPairingFailed("pairing finished but the link is not encrypted", "NOT_ENCRYPTED")

    async def read_band_info(self) -> bytes:
        return await self._read(spec.BAND_INFO)

    async def read_card_list(self) -> bytes:
        return await self._read(spec.CARD_LIST)

    async def write_control(self, data: bytes) -> None:
        await self._write(spec.CONTROL_POINT, data)

    async def write_relay(self, data: bytes) -> None:
        """Write one relay-in fragment (write with response: returns once the band has it)."""
        await self._write(spec.RELAY_IN, data)

    async def subscribe_relay(self, on_data: Callable[[bytes], None]) -> None:
        """Call ``on_data`` with every relay-out notification (one app-layer fragment each)."""
        proxy = self._proxy(spec.RELAY_OUT)
        await self._call(f"subscribing to {spec.RELAY_OUT.name}",
                         lambda: proxy.subscribe(lambda value: on_data(bytes(value))),
                         spec.RELAY_OUT)

    async def subscribe_card_list(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` when the band's card list changes; :meth:`read_card_list` reads it."""
        proxy = self._proxy(spec.CARD_LIST)
        await self._call(f"subscribing to {spec.CARD_LIST.name}",
                         lambda: proxy.subscribe(lambda _value: on_change()), spec.CARD_LIST)

    async def _read(self, c: spec.Characteristic) -> bytes:
        proxy = self._proxy(c)
        return bytes(await self._call(f"reading {c.name}", proxy.read_value, c))

    async def _write(self, c: spec.Characteristic, data: bytes) -> None:
        proxy = self._proxy(c)
        limit = spec.payload_size(self.mtu)
        if len(data) > limit:
            # Bumble would switch to a prepared (long) write; the relay is fragmented above us.
            raise ValueError(f"a {c.name} write carries at most {limit} bytes at ATT MTU "
                             f"{self.mtu}, got {len(data)}: fragment it")
        await self._call(f"writing {c.name}",
                         lambda: proxy.write_value(bytes(data), with_response=True), c)

    def _proxy(self, c: spec.Characteristic) -> CharacteristicProxy[bytes]:
        self._require_connection()
        return self._characteristics[c.name]

    async def _call(self, what: str, operation: Callable[[], Awaitable[_T]],
                    c: spec.Characteristic | None = None) -> _T:
        """Run one GATT or SMP operation, ended by a disconnection, with Bumble's errors translated."""
        connection = self._require_connection()
        try:
            return await connection.cancel_on_disconnection(operation())
        except att.ATT_Error as exc:
            name = c.name if c else what
            code = att.ErrorCode(exc.error_code)
            if code in _ENCRYPTION_ERRORS:
                raise EncryptionRequired(f"the band refused {what}: {name} needs an encrypted "
                                         f"link ({code.name}); pair first", name, code) from exc
            raise CharacteristicRefused(f"the band refused {what}: ATT error {code.name}",
                                        name, code) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (task is not None and task.cancelling()) or self._connection is connection:
                raise  # our caller was cancelled, not the link
            raise NotConnected(f"the band disconnected during {what}") from None
        except BaseBumbleError as exc:
            if isinstance(exc, ProtocolError) and exc.error_namespace == "smp":
                raise
            raise BleError(f"{what} failed: {exc}") from exc

