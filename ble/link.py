"""What both ends of the band's BLE link do alike on Bumble: pairing policy, devices, one link.

The band's GATT server (:mod:`wallet.ble.peripheral`) and, when the phone
runs on Bumble rather than its OS's stack, the phone's Bumble device
(:mod:`phone.ble.bumble_backend.stack`, under the bleak central) each sit on a
Bumble :class:`~bumble.host.Host`: a real controller (:func:`transport_host`: a USB
dongle, an HCI socket, a controller over TCP) or a virtual one
(:mod:`ble.virtual`). Both enforce the same security, as the spec asks:

- Every characteristic but band info carries Bumble's ``*_REQUIRES_ENCRYPTION``
  permissions, and so does the client configuration descriptor of each
  notifying one, so an unpaired phone can neither read, write nor subscribe:
  Bumble's server answers *Insufficient Encryption* before our code runs.
- Pairing is LE Secure Connections with numeric comparison, bonded, and
  nothing else. Bumble picks the method from the two IO capabilities and
  would fall back to Just Works (or legacy pairing) for a peer that asks for
  it, so both sides run :class:`_NumericComparisonOnly`
  (:func:`numeric_comparison_only`), which fails such a request with
  *Authentication Requirements* before any key exists. Bumble marks any
  encrypted link "authenticated", so the attribute permissions alone could not
  tell a Just Works link from a compared one.
- Each side shows the six digits through a callback (:data:`ConfirmNumber`)
  and pairs only if it answers yes; a "no" on either side fails the pairing.
"""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from bumble import smp
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.hci import Address
from bumble.host import Host
from bumble.keys import JsonKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

from ble import spec
from ble.errors import BleError, NotConnected

_log = logging.getLogger(__name__)

#: Shows the six-digit number (``f"{number:06d}"``) to a person and returns
#: whether they confirm it matches the other device's.
ConfirmNumber = Callable[[int], Awaitable[bool]]

#: The ATT MTU both sides ask for: with LE Data Length Extension a link-layer
#: PDU carries 251 bytes, which is a 4-byte L2CAP header and a 247-byte ATT PDU,
#: so one write or notification (244 bytes of payload) is one radio packet.
ATT_MTU = 247
#: The public addresses the band and the phone take on a radio of their own.
BAND_ADDRESS, PHONE_ADDRESS = "C0:00:00:00:00:11", "C0:00:00:00:00:22"


def band_name(suffix: str) -> str:
    """The name a band advertises and shows in its GAP service: ``Koala <suffix>``."""
    return f"{spec.DEVICE_NAME_PREFIX} {suffix}"


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


def numeric_comparison_only(device: Device, confirm_number: ConfirmNumber) -> None:
    """Make ``device`` pair only by LE Secure Connections numeric comparison, bonded, asking
    ``confirm_number`` for the six digits."""
    config = _pairing_config(confirm_number)
    device.pairing_config_factory = lambda connection: config
    device.smp_session_proxy = _NumericComparisonOnly


def keep_bonds(device: Device, address: str, keystore: Path | None) -> None:
    """Bonds (the link keys of pairings) in a JSON file, so that a bonded peer encrypts the
    next connection with them instead of pairing again; in memory without a file."""
    if keystore is not None:
        keystore.parent.mkdir(parents=True, exist_ok=True)
        device.keystore = JsonKeyStore(address, str(keystore))


def device_config(name: str, address: str) -> DeviceConfiguration:
    config = DeviceConfiguration(name=name, address=Address(address))
    # Bumble's default identity resolving key is all zeros, the same for every
    # device; ours is fresh per start (the band does not use private addresses).
    config.irk = secrets.token_bytes(16)
    return config



class OneLink(ABC):
    """The one link a band or a companion has at a time; ``async with`` starts and stops it."""

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

    @abstractmethod
    async def start(self) -> None:
        """Power on (the band also advertises)."""

    @abstractmethod
    async def stop(self) -> None:
        """Drop the link, if any, and power off."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()



async def transport_host(transport_spec: str) -> tuple[Host, Callable[[], Awaitable[None]]]:
    """A Bumble host on the controller behind ``transport_spec``, and how to close it."""
    try:
        transport = await open_transport(transport_spec)
    except Exception as error:  # Bumble raises plain exceptions for a missing device
        raise BleError(f"no Bluetooth controller at {transport_spec!r}: {error}") from error
    return Host(transport.source, transport.sink), transport.close
