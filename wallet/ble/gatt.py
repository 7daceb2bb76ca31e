"""The band's GATT service and the companion's GATT client, on Bumble.

:class:`BandPeripheral` is the band: a GATT server with the service of
:mod:`wallet.ble.spec`, advertising its name and service UUID.
:class:`CompanionCentral` is the phone: it finds the band, connects, pairs,
and reads, writes and subscribes. Both sit on a Bumble :class:`~bumble.host.Host`,
which may be a real controller (a USB dongle, an HCI socket: not tried yet)
or a virtual one; :func:`virtual_radio` joins virtual controllers on one
in-process link for tests and demos.

Security, as the spec asks:

- Every characteristic but band info carries Bumble's ``*_REQUIRES_ENCRYPTION``
  permissions, and so does the client configuration descriptor of each
  notifying one, so an unpaired phone can neither read, write nor subscribe:
  Bumble's server answers *Insufficient Encryption* before our code runs.
- Pairing is LE Secure Connections with numeric comparison, bonded, and
  nothing else. Bumble picks the method from the two IO capabilities and
  would fall back to Just Works (or legacy pairing) for a peer that asks for
  it, so both sides run :class:`_NumericComparisonOnly`, which fails such a
  request with *Authentication Requirements* before any key exists. Bumble
  marks any encrypted link "authenticated", so the attribute permissions
  alone could not tell a Just Works link from a compared one.
- Each side shows the six digits through a callback (``confirm_number``) and
  pairs only if it answers yes; a "no" on either side fails the pairing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from bumble import att, smp
from bumble.controller import Controller
from bumble.core import UUID as BumbleUUID
from bumble.core import AdvertisingData, BaseBumbleError, ProtocolError
from bumble.data_types import (
    CompleteListOf128BitServiceUUIDs,
    CompleteLocalName,
    Flags,
    ShortenedLocalName,
)
from bumble.device import Advertisement, Connection, Device, DeviceConfiguration, Peer
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    Descriptor,
    Service,
)
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.keys import JsonKeyStore
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from wallet.ble import spec
from wallet.ble.errors import (
    BleError,
    CharacteristicRefused,
    EncryptionRequired,
    LinkPairingFailed,
    NotAuthorized,
    NotConnected,
)

__all__ = [
    "ATT_MTU",
    "BandAdvertisement",
    "BandPeripheral",
    "CompanionCentral",
    "ConfirmNumber",
    "Handler",
    "VirtualRadio",
    "band_name",
    "virtual_radio",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Shows the six-digit number (``f"{number:06d}"``) to a person and returns
#: whether they confirm it matches the other device's.
ConfirmNumber = Callable[[int], Awaitable[bool]]
#: Receives the bytes a companion wrote; may be a coroutine function. The
#: companion's write (with response) completes when it returns.
Handler = Callable[[bytes], Awaitable[None] | None]

#: The ATT MTU both sides ask for: with LE Data Length Extension a link-layer
#: PDU carries 251 bytes, which is a 4-byte L2CAP header and a 247-byte ATT PDU,
#: so one write or notification (244 bytes of payload) is one radio packet.
ATT_MTU = 247
_ADV_MAX = 31  # legacy advertising and scan response data, bytes
_AD_HEADER = 2  # length and type of one AD structure
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


def band_name(suffix: str) -> str:
    """The name a band advertises and shows in its GAP service: ``Koala <suffix>``."""
    return f"{spec.DEVICE_NAME_PREFIX} {suffix}"


# --- pairing policy ---------------------------------------------------------------------


class _NumericComparison(PairingDelegate):
    """Asks a person to compare six digits; refuses every other way of pairing.

    Bumble asks ``confirm()`` only for Just Works and ``get_number()`` only
    for passkey entry; neither proves that the person sees the same device,
    so both say no (the SMP policy below refuses those methods earlier).
    """

    def __init__(self, confirm_number: ConfirmNumber) -> None:
        keys = (PairingDelegate.KeyDistribution.DISTRIBUTE_ENCRYPTION_KEY
                | PairingDelegate.KeyDistribution.DISTRIBUTE_IDENTITY_KEY)
        super().__init__(PairingDelegate.IoCapability.DISPLAY_OUTPUT_AND_YES_NO_INPUT, keys, keys)
        self._confirm_number = confirm_number

    async def compare_numbers(self, number: int, digits: int) -> bool:
        return bool(await self._confirm_number(number))

    async def confirm(self, auto: bool = False) -> bool:
        return False

    async def get_number(self) -> int | None:
        return None


def _pairing_config(confirm_number: ConfirmNumber) -> PairingConfig:
    return PairingConfig(sc=True, mitm=True, bonding=True,
                         delegate=_NumericComparison(confirm_number))


class _NumericComparisonOnly(smp.Session):
    """An SMP session that fails, at the first message, any pairing but SC numeric comparison.

    This is the Core spec's "Secure Connections Only" mode (Vol 3 Part H
    2.3.5.1) narrowed to one association model: a request or response
    without the SC flag, with OOB data, or whose IO capabilities lead to
    Just Works or passkey entry gets *Authentication Requirements*.
    """

    def on_smp_pairing_request_command(self, command: smp.SMP_Pairing_Request_Command) -> None:
        if self._numeric_comparison(command.auth_req, command.oob_data_flag,
                                    command.io_capability, self.io_capability):
            super().on_smp_pairing_request_command(command)

    def on_smp_pairing_response_command(self, command: smp.SMP_Pairing_Response_Command) -> None:
        if self.is_responder or self._numeric_comparison(
                command.auth_req, command.oob_data_flag, self.io_capability, command.io_capability):
            super().on_smp_pairing_response_command(command)

    def _numeric_comparison(self, auth_req: int, oob_data_flag: int, initiator_io: int,
                            responder_io: int) -> bool:
        if auth_req & smp.AuthReq.SC and not oob_data_flag:
            self.decide_pairing_method(auth_req, initiator_io, responder_io)
            if self.pairing_method == smp.PairingMethod.NUMERIC_COMPARISON:
                return True
        _log.info("refusing to pair with %s: not LE Secure Connections numeric comparison",
                  self.connection.peer_address)
        self.send_pairing_failed(smp.ErrorCode.AUTHENTICATION_REQUIREMENTS)
        return False


def _secure(device: Device, confirm_number: ConfirmNumber) -> None:
    config = _pairing_config(confirm_number)
    device.pairing_config_factory = lambda connection: config
    device.smp_session_proxy = _NumericComparisonOnly


def _keep_bonds(device: Device, address: str, keystore: Path | None) -> None:
    """Bonds (the link keys of pairings) in a JSON file, so that a bonded peer encrypts the
    next connection with them instead of pairing again; in memory without a file."""
    if keystore is not None:
        keystore.parent.mkdir(parents=True, exist_ok=True)
        device.keystore = JsonKeyStore(address, str(keystore))


def _device_config(name: str, address: str) -> DeviceConfiguration:
    config = DeviceConfiguration(name=name, address=Address(address))
    # Bumble's default identity resolving key is all zeros, the same for every
    # device; ours is fresh per start (the band does not use private addresses).
    config.irk = secrets.token_bytes(16)
    return config


# --- the band ---------------------------------------------------------------------------


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


class _OneLink:
    """The one link a band or a companion has at a time."""

    _connection: Connection | None
    _unconnected = "there is no link"

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def encrypted(self) -> bool:
        """Whether the link is encrypted (paired, or re-encrypted with a bond)."""
        return self._connection is not None and self._connection.is_encrypted

    @property
    def mtu(self) -> int:
        """The link's ATT MTU (23 until it is exchanged)."""
        return self._require_connection().att_mtu

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise NotConnected(self._unconnected)
        return self._connection


class BandPeripheral(_OneLink):
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
        self.device = Device(config=_device_config(self.name, address), host=host)
        _keep_bonds(self.device, address, keystore)
        self.device.gatt_server.max_mtu = mtu
        _secure(self.device, confirm_number)
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
        if self._connection is not None:
            await self._connection.disconnect()
        await self.device.power_off()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

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


# --- the companion ----------------------------------------------------------------------


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


class CompanionCentral(_OneLink):
    """The phone's side of BLE: finds a band, connects, pairs, and uses its service.

    Every operation raises :class:`~wallet.ble.errors.BleError` (or a
    subclass) with what went wrong: :class:`NotConnected`,
    :class:`LinkPairingFailed`, :class:`EncryptionRequired` for a protected
    characteristic on an unpaired link, :class:`CharacteristicRefused`
    for any other ATT error. The Bumble error is the ``__cause__``.
    """

    _unconnected = "the companion is not connected to a band: connect first"

    def __init__(self, host: Host, *, address: str, confirm_number: ConfirmNumber,
                 name: str = "Koala companion", keystore: Path | None = None) -> None:
        self.device = Device(config=_device_config(name, address), host=host)
        _keep_bonds(self.device, address, keystore)
        _secure(self.device, confirm_number)
        self._connection: Connection | None = None
        self._characteristics: dict[str, CharacteristicProxy[bytes]] = {}
        self._disconnected = asyncio.Event()
        self._disconnected.set()

    async def start(self) -> None:
        await self.device.power_on()

    async def close(self) -> None:
        """Disconnect (if connected) and power off."""
        await self.disconnect()
        await self.device.power_off()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

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


# --- virtual controllers ----------------------------------------------------------------


class VirtualRadio:
    """Bumble's virtual controllers on one in-process link: every host it makes hears the others.

    No radio timing is modelled, but advertising still runs on its interval,
    so a band under test should advertise often (every 20 ms, say).
    """

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]  # Bumble leaves it untyped
        self._controllers: list[Controller] = []

    def host(self) -> Host:
        """A host on a new virtual controller of this link (call it inside the event loop)."""
        controller = Controller(f"virtual-{len(self._controllers) + 1}", link=self.link)
        self._controllers.append(controller)
        return Host(controller, AsyncPipeSink(controller))

    def close(self) -> None:
        """Take the controllers off the link, so nothing more reaches their hosts."""
        for controller in self._controllers:
            self.link.remove_controller(controller)
        self._controllers.clear()


@asynccontextmanager
async def virtual_radio() -> AsyncIterator[VirtualRadio]:
    """A :class:`VirtualRadio` for the duration of a test or demo, closed afterwards."""
    radio = VirtualRadio()
    try:
        yield radio
    finally:
        radio.close()
