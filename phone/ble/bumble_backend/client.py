"""bleak's client on a Bumble device: connect, GATT, pairing, as bleak's OS backends do them.

What an operating system does below bleak, this does on the stack's Bumble
device: it asks for the ATT MTU on connecting, discovers the services into
bleak's own objects, encrypts the link with a bond or pairs (LE Secure
Connections, numeric comparison: :mod:`ble.link`), and tells bleak's
disconnect callback when the peer, not we, ends the link. Bumble's errors
become bleak's: an ATT error response is
:class:`~bleak.exc.BleakGATTProtocolError`, everything else
:class:`~bleak.exc.BleakError`, and a failed pairing is ``BleakError(reason,
why)``: the SMP failure's name, then what it means for the person pairing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from bleak import BleakScanner
from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic, GattCharacteristicsFlags
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, smp
from bumble.core import UUID, BaseBumbleError, ProtocolError
from bumble.device import Connection, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy
from bumble.hci import Address

from phone.ble.bumble_backend.scanner import BumbleScanner, bleak_uuid
from phone.ble.bumble_backend.stack import BumbleStack

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_PAIRING_FAILURES: dict[int | None, str] = {
    smp.ErrorCode.CONFIRM_VALUE_FAILED: "the numbers were not confirmed on both sides "
                                        "(someone said no, or they differed)",
    smp.ErrorCode.NUMERIC_COMPARISON_FAILED: "the numbers were not confirmed on both sides",
    smp.ErrorCode.AUTHENTICATION_REQUIREMENTS: "the peer cannot do LE Secure Connections with "
                                               "numeric comparison, the only pairing allowed",
    smp.ErrorCode.PAIRING_NOT_SUPPORTED: "the peer refused to pair",
}


def _properties(proxy: CharacteristicProxy[bytes]) -> list[CharacteristicPropertyName]:
    """A characteristic's properties by bleak's names (``"write-without-response"``, …)."""
    return [cast(CharacteristicPropertyName, flag.name.replace("_", "-"))
            for flag in GattCharacteristicsFlags if proxy.properties & flag.value]


class BumbleClient(BaseBleakClient):
    """``BleakClient(device, backend=BumbleClient, bumble=stack)``: a GATT client on the
    stack's Bumble device."""

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None, timeout: float,
                 bumble: BumbleStack, services: set[str] | None = None,
                 **_other_backends: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        self._stack = bumble
        self._found = address_or_ble_device if isinstance(address_or_ble_device, BLEDevice) else None
        self._wanted = services
        self._connection: Connection | None = None
        self._leaving = False

    @property
    def name(self) -> str:
        return (self._found.name if self._found else None) or self.address

    @property
    def mtu_size(self) -> int:
        return self._require().att_mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        found = self._found = self._found or await self._find()
        try:
            connection = await self._stack.device.connect(found.details, timeout=self._timeout)
        except (BaseBumbleError, TimeoutError) as exc:
            raise BleakError(f"could not connect to {self.address}: {exc}") from exc
        self._connection, self._leaving = connection, False
        connection.on(Connection.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection(connection))
        try:
            if self._stack.mtu is not None:
                await self._call("the MTU exchange", Peer(connection).request_mtu(self._stack.mtu))
            self.services = await self._discover(connection)
            if pair:
                await self.pair()
        except BaseException:
            await self.disconnect()
            raise

    async def _find(self) -> BLEDevice:
        """The device behind a bare address, as bleak's OS backends find it: by scanning."""
        found = await BleakScanner.find_device_by_address(
            self.address, self._timeout, backend=BumbleScanner, **self._stack.options())
        if found is None:
            raise BleakDeviceNotFoundError(self.address, f"{self.address} was not seen advertising "
                                                         f"within {self._timeout:g} s")
        return found

    def _on_disconnection(self, connection: Connection) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        if not self._leaving and self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    async def _discover(self, connection: Connection) -> BleakGATTServiceCollection:
        peer = Peer(connection)
        wanted = [UUID(uuid) for uuid in self._wanted or ()]
        collection = BleakGATTServiceCollection()
        for proxy in await self._call("service discovery", peer.discover_services(wanted)):
            service = BleakGATTService(proxy, proxy.handle, bleak_uuid(proxy.uuid))
            collection.add_service(service)
            for c in await self._call("characteristic discovery", proxy.discover_characteristics()):
                characteristic = BleakGATTCharacteristic(
                    c, c.handle, bleak_uuid(c.uuid), _properties(c),
                    lambda: connection.att_mtu - 3, service)
                collection.add_characteristic(characteristic)
                for d in await self._call("descriptor discovery", c.discover_descriptors()):
                    collection.add_descriptor(BleakGATTDescriptor(d, d.handle, bleak_uuid(d.type),
                                                                  characteristic))
        return collection

    async def disconnect(self) -> None:
        if (connection := self._connection) is not None:
            self._leaving = True
            try:
                await connection.disconnect()
            except BaseBumbleError as exc:
                raise BleakError(f"could not disconnect from {self.address}: {exc}") from exc

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Encrypt the link with the bond of an earlier pairing; pair when there is none, or
        when the peer no longer has it (as an OS does)."""
        connection = self._require()
        keystore = self._stack.device.keystore
        if keystore is not None and await keystore.get(str(connection.peer_address)):
            try:
                await self._call("encryption", asyncio.wait_for(connection.encrypt(), self._timeout))
            except (BleakError, TimeoutError) as exc:
                _log.info("%s did not take our bond (%s): pairing again", self.address, exc)
            if connection.is_encrypted:
                return
        try:
            await self._call("pairing", connection.pair())
        except ProtocolError as exc:
            why = _PAIRING_FAILURES.get(exc.error_code, f"SMP error {exc.error_name}")
            raise BleakError(str(exc.error_name), why) from exc
        if not connection.is_encrypted:
            raise BleakError("NOT_ENCRYPTED", "pairing finished but the link is not encrypted")

    async def unpair(self) -> None:
        """Forget the bond with the peer (the next :meth:`pair` pairs afresh)."""
        keystore = self._stack.device.keystore
        peer = self._found.details if self._found else Address(self.address)
        if keystore is not None and await keystore.get(str(peer)):
            await keystore.delete(str(peer))

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        return bytearray(await self._call(f"reading {characteristic.uuid}", proxy.read_value()))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        proxy: DescriptorProxy = descriptor.obj
        return bytearray(await self._call(f"reading {descriptor.uuid}", proxy.read_value()))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._call(f"writing {characteristic.uuid}",
                         proxy.write_value(bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        proxy: DescriptorProxy = descriptor.obj
        await self._call(f"writing {descriptor.uuid}",
                         proxy.write_value(bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._call(f"subscribing to {characteristic.uuid}",
                         proxy.subscribe(lambda value: callback(bytearray(value))))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._call(f"unsubscribing from {characteristic.uuid}", proxy.unsubscribe())

    def _require(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    async def _call(self, what: str, operation: Awaitable[_T]) -> _T:
        """Run one operation on the link, ended by a disconnection, with Bumble's errors as
        bleak's (an SMP failure stays Bumble's for :meth:`pair` to name)."""
        connection = self._require()
        try:
            return await connection.cancel_on_disconnection(operation)
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (task is not None and task.cancelling()) or self._connection is connection:
                raise  # our caller was cancelled, not the link
            raise BleakError(f"{self.address} disconnected during {what}") from None
        except ProtocolError as exc:
            if exc.error_namespace == "smp":
                raise
            raise BleakError(f"{what} failed: {exc}") from exc
        except BaseBumbleError as exc:
            raise BleakError(f"{what} failed: {exc}") from exc
