"""The band's side of BLE: a GATT server with the Koala service, advertising its name.

:class:`BandPeripheral` serves the characteristics of :mod:`ble.spec` on a
Bumble host (:mod:`ble.link` says which hosts, and the security both sides
enforce). The values and handlers are the band's (:mod:`wallet.ble.service`);
this module only moves bytes and guards them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bumble import att
from bumble.core import UUID as BumbleUUID
from bumble.core import AdvertisingData
from bumble.data_types import (
    CompleteListOf128BitServiceUUIDs,
    CompleteLocalName,
    Flags,
    ShortenedLocalName,
)
from bumble.device import Connection, Device
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    Descriptor,
    Service,
)
from bumble.host import Host

from ble import spec
from ble.errors import BleError, EncryptionRequired, NotAuthorized
from ble.link import (
    ATT_MTU,
    ConfirmNumber,
    OneLink,
    band_name,
    device_config,
    keep_bonds,
    numeric_comparison_only,
)

__all__ = ["BandPeripheral", "Handler"]

_log = logging.getLogger(__name__)

#: Receives the bytes a companion wrote; may be a coroutine function. The
#: companion's write (with response) completes when it returns.
Handler = Callable[[bytes], Awaitable[None] | None]

_ADV_MAX = 31  # legacy advertising and scan response data, bytes
_AD_HEADER = 2  # length and type of one AD structure


def _advertising(name: str) -> tuple[bytes, bytes]:
    """Advertising data (flags, service UUID, name or as much as fits) and scan response (name).

    A 128-bit UUID takes 18 of the 31 bytes, so a long name is shortened in
    the advertisement and whole in the scan response (which Bumble's virtual
    controller does not send; there, the shortened name is what a scan sees).
    """
    head = bytes(AdvertisingData([
        Flags(AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE
              | AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED),
        CompleteListOf128BitServiceUUIDs([BumbleUUID(spec.SERVICE)]),
    ]))
    room = _ADV_MAX - len(head) - _AD_HEADER
    encoded = name.encode()
    shown = (CompleteLocalName(name) if len(encoded) <= room
             else ShortenedLocalName(encoded[:room].decode(errors="ignore")))
    return head + bytes(AdvertisingData([shown])), bytes(AdvertisingData([CompleteLocalName(name)]))


def _not_permitted(error: att.ErrorCode) -> Callable[..., Any]:
    def refuse(*_: object) -> Any:
        raise att.ATT_Error(error)
    return refuse



class BandPeripheral(OneLink):
    """The band's side of BLE: advertises, accepts one companion, serves the Koala service.

    The values and handlers are the band's; this class only moves bytes and
    enforces the link's security. A handler that raises fails the write with
    ATT *Unlikely Error* (and is logged): the companion sees a refusal, not a
    timeout.
    """

    _unconnected = "no companion is connected to the band"

    def __init__(self, host: Host, *, address: str, name_suffix: str,
                 band_info: Callable[[], bytes], card_list: Callable[[], bytes],
                 on_control: Handler, on_relay: Handler, confirm_number: ConfirmNumber,
                 mtu: int = ATT_MTU, advertising_interval_ms: float = 100.0,
                 keystore: Path | None = None) -> None:
        spec.payload_size(mtu)  # validates the range
        self.name = band_name(name_suffix)
        self.device = Device(config=device_config(self.name, address), host=host)
        keep_bonds(self.device, address, keystore)
        self.device.gatt_server.max_mtu = mtu
        numeric_comparison_only(self.device, confirm_number)
        self._advertising_interval_ms = advertising_interval_ms
        self._card_list = card_list
        self._connection: Connection | None = None
        self._subscribed: set[str] = set()  # characteristics the companion subscribed to
        #: Called at each new connection: what the band keeps per connection starts afresh.
        self.on_connection: Callable[[], None] | None = None
        self._characteristics = {
            spec.BAND_INFO.name: self._characteristic(spec.BAND_INFO, read=band_info),
            spec.CARD_LIST.name: self._characteristic(spec.CARD_LIST, read=card_list),
            spec.CONTROL_POINT.name: self._characteristic(spec.CONTROL_POINT, write=on_control),
            spec.RELAY_IN.name: self._characteristic(spec.RELAY_IN, write=on_relay),
            spec.RELAY_OUT.name: self._characteristic(spec.RELAY_OUT),
        }
        self.device.add_service(Service(spec.SERVICE, list(self._characteristics.values())))
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)

    def _characteristic(self, c: spec.Characteristic, read: Callable[[], bytes] | None = None,
                        write: Handler | None = None) -> Characteristic[bytes]:
        properties = Characteristic.Properties(0)
        permissions = att.Attribute.Permissions(0)
        if spec.Access.READ in c.access:
            properties |= Characteristic.Properties.READ
            permissions |= att.Attribute.Permissions.READABLE
            if c.encrypted:
                permissions |= att.Attribute.Permissions.READ_REQUIRES_ENCRYPTION
        if spec.Access.WRITE in c.access:
            properties |= Characteristic.Properties.WRITE
            permissions |= att.Attribute.Permissions.WRITEABLE
            if c.encrypted:
                permissions |= att.Attribute.Permissions.WRITE_REQUIRES_ENCRYPTION
        if spec.Access.WRITE_COMMAND in c.access:
            # Bumble checks the encryption of a Write Command as of a request, and drops it
            properties |= Characteristic.Properties.WRITE_WITHOUT_RESPONSE
        if spec.Access.NOTIFY in c.access:
            properties |= Characteristic.Properties.NOTIFY
        # Bumble does not check READABLE / WRITEABLE itself; the value does.
        value: att.AttributeValue[bytes] = att.AttributeValue(
            read=(lambda _: self._guard(c, read)) if read
            else _not_permitted(att.ErrorCode.READ_NOT_PERMITTED),
            write=(lambda _, data: self._handle(c, write, data)) if write
            else _not_permitted(att.ErrorCode.WRITE_NOT_PERMITTED))
        characteristic: Characteristic[bytes] = Characteristic(c.uuid, properties, permissions, value)
        if spec.Access.NOTIFY in c.access:
            # Our own client configuration descriptor, because the one Bumble
            # adds by itself can be written (subscribed) over any link.
            cccd_permissions = att.Attribute.Permissions.READABLE | att.Attribute.Permissions.WRITEABLE
            if c.encrypted:
                cccd_permissions |= (att.Attribute.Permissions.READ_REQUIRES_ENCRYPTION
                                     | att.Attribute.Permissions.WRITE_REQUIRES_ENCRYPTION)
            characteristic.descriptors = [Descriptor(
                GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR, cccd_permissions,
                self.device.gatt_server.make_descriptor_value(characteristic))]
            characteristic.on(Characteristic.EVENT_SUBSCRIPTION,
                              lambda bearer, notify, _indicate: self._on_subscription(c, bearer, notify))
        return characteristic

    @staticmethod
    def _guard(c: spec.Characteristic, read: Callable[[], bytes]) -> bytes:
        try:
            return bytes(read())
        except NotAuthorized as refused:
            raise att.ATT_Error(att.ErrorCode.INSUFFICIENT_AUTHORIZATION) from refused
        except Exception as exc:
            _log.exception("reading %s failed", c.name)
            raise att.ATT_Error(att.ErrorCode.UNLIKELY_ERROR) from exc

    @staticmethod
    async def _handle(c: spec.Characteristic, handler: Handler, data: bytes) -> None:
        try:
            result = handler(bytes(data))
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            _log.exception("handling a write of %s failed", c.name)
            raise att.ATT_Error(att.ErrorCode.UNLIKELY_ERROR) from exc

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self._subscribed.clear()
        if self.on_connection is not None:
            self.on_connection()

        def on_disconnection(_reason: int) -> None:
            if self._connection is connection:
                self._connection = None
                self._subscribed.clear()

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)

    def _on_subscription(self, c: spec.Characteristic, bearer: object, notify: bool) -> None:
        if bearer is not self._connection:
            return
        if notify:
            self._subscribed.add(c.name)
        else:
            self._subscribed.discard(c.name)

    async def start(self) -> None:
        """Power on and advertise; advertising resumes by itself after a companion leaves."""
        await self.device.power_on()
        advertising, scan_response = _advertising(self.name)
        await self.device.start_advertising(
            auto_restart=True, advertising_data=advertising, scan_response_data=scan_response,
            advertising_interval_min=self._advertising_interval_ms,
            advertising_interval_max=self._advertising_interval_ms)

    async def stop(self) -> None:
        """Stop advertising, drop the companion and power off."""
        await self.device.stop_advertising()
        await self.disconnect()
        await self.device.power_off()

    async def disconnect(self) -> None:
        """Drop the companion's link, if there is one (advertising resumes)."""
        if self._connection is not None:
            await self._connection.disconnect()

    async def notify_relay(self, data: bytes) -> None:
        """Send one relay-out notification (one app-layer fragment) to the companion.

        Raises rather than let Bumble cut a fragment that does not fit or drop
        one nobody subscribed to: a lost fragment would only show up later,
        as a broken app-layer frame.
        """
        await self._notify(spec.RELAY_OUT, data)

    async def notify_card_list(self) -> None:
        """Tell the companion the card list changed (the value may be cut at the MTU: read it)."""
        connection = self._require_connection()
        value = self._guard(spec.CARD_LIST, self._card_list)
        await self._notify(spec.CARD_LIST, value[:spec.payload_size(connection.att_mtu)])

    async def _notify(self, c: spec.Characteristic, data: bytes) -> None:
        connection = self._require_connection()
        if c.encrypted and not connection.is_encrypted:
            raise EncryptionRequired(f"the band will not send {c.name} over a link that is not "
                                     f"encrypted: the companion must pair first", c.name,
                                     att.ErrorCode.INSUFFICIENT_ENCRYPTION)
        limit = spec.payload_size(connection.att_mtu)
        if len(data) > limit:
            raise ValueError(f"a {c.name} notification carries at most {limit} bytes at ATT MTU "
                             f"{connection.att_mtu}, got {len(data)}: fragment it")
        if c.name not in self._subscribed:
            raise BleError(f"the companion has not subscribed to {c.name}; it would not hear it")
        await self.device.notify_subscriber(connection, self._characteristics[c.name], bytes(data))

