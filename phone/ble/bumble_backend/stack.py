"""The phone's Bluetooth stack when it is Bumble: one device on one controller.

An operating system shares one adapter between bleak's scanner and its
clients, keeps the bonds and asks the user to confirm a pairing;
:class:`BumbleStack` does the same for :mod:`phone.ble.bumble_backend`: one
Bumble :class:`~bumble.device.Device` on a host, under the pairing policy
both ends of the band's link share (:mod:`ble.link`: LE Secure Connections
numeric comparison only, bonded), with the ATT MTU it asks for on every
connection. The host comes from a Bumble transport (:func:`open_stack`:
``usb:0``, ``hci-socket:0``, ``tcp-client:HOST:PORT``) or from a virtual radio
(:mod:`ble.virtual`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bumble.device import Device
from bumble.host import Host

from ble.link import (
    ATT_MTU,
    PHONE_ADDRESS,
    ConfirmNumber,
    device_config,
    keep_bonds,
    numeric_comparison_only,
    transport_host,
)
from ble.spec import payload_size


class BumbleStack:
    """A phone's Bumble device: what the backend's scanner and clients share.

    ``mtu`` is the ATT MTU each connection asks for (None: no exchange, 23).
    Pass it to bleak as ``BleakScanner(…, bumble=stack)`` and ``BleakClient(…,
    bumble=stack)`` (:meth:`options`).
    """

    def __init__(self, host: Host, *, confirm_number: ConfirmNumber,
                 address: str = PHONE_ADDRESS, name: str = "Koala companion",
                 keystore: Path | None = None, mtu: int | None = ATT_MTU) -> None:
        if mtu is not None:
            payload_size(mtu)  # validates the range
        self.device = Device(config=device_config(name, address), host=host)
        keep_bonds(self.device, address, keystore)
        numeric_comparison_only(self.device, confirm_number)
        self.mtu = mtu

    def options(self) -> dict[str, Any]:
        """The keyword bleak passes on to this backend's scanner and clients."""
        return {"bumble": self}

    async def start(self) -> None:
        await self.device.power_on()

    async def stop(self) -> None:
        await self.device.power_off()


async def open_stack(transport: str, confirm_number: ConfirmNumber,
                     keystore: Path | None = None
                     ) -> tuple[BumbleStack, Callable[[], Coroutine[Any, Any, None]]]:
    """A started stack on the controller behind a Bumble ``transport``, and how to close it."""
    host, close = await transport_host(transport)
    stack = BumbleStack(host, confirm_number=confirm_number, keystore=keystore)
    await stack.start()

    async def closed() -> None:
        await stack.stop()
        await close()

    return stack, closed
