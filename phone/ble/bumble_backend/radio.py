"""Phones on our Bumble backend: on a Bluetooth controller, or on Bumble's virtual radio.

:func:`phone_on_transport` puts the phone on the controller behind a Bumble
transport (``usb:0`` for a dongle, ``hci-socket:0`` on Linux,
``tcp-client:HOST:PORT`` for a controller elsewhere, e.g. Bumble's virtual
controllers app), the band advertising elsewhere. :class:`VirtualBle` puts a
band and the phone on a virtual radio in this process (the command line's
``--transport virtual``, and tests): the one place the phone's package holds a
band. Either way the phone is the same bleak central
(:class:`~phone.ble.phone.Phone`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ble import secure
from ble.errors import BleError
from ble.link import BAND_ADDRESS, ConfirmNumber
from ble.virtual import VirtualRadio
from phone.ble.bumble_backend import backend
from phone.ble.bumble_backend.stack import BumbleStack, open_stack
from phone.ble.channel import LoopThread
from phone.ble.phone import Phone
from wallet.band import Band
from wallet.ble.service import BandService


def _link_confirm(confirm: Callable[[str], bool]) -> ConfirmNumber:
    async def compare(number: int) -> bool:
        return confirm(f"{number:06d}")
    return compare


def phone_on_transport(transport: str, phone_id: bytes, confirm: Callable[[str], bool],
                       keystore: Path | None = None) -> tuple[Phone, Callable[[], None]]:
    """A phone on a real (or remote virtual) controller, and how to let it go; ``confirm``
    compares the six digits of both pairings, the link's and the app layer's."""
    loop = LoopThread()
    try:
        stack, close = loop.call(open_stack(transport, _link_confirm(confirm), keystore))
    except BleError:
        loop.stop()
        raise
    phone = Phone(loop, backend(stack), phone_id, confirm)

    def release() -> None:
        phone.close()
        loop.call(close())
        loop.stop()

    return phone, release


class VirtualBle(Phone):
    """``band`` serving BLE and a phone, on Bumble's virtual radio in a thread of their own:
    the command line without a controller, and tests. ``shown`` is the band's display."""

    def __init__(self, band: Band, phone_id: bytes, confirm: Callable[[str], bool],
                 rng: secure.Rng = os.urandom, answer_timeout: float = 2.0,
                 keystores: tuple[Path, Path] | None = None,
                 band_shows: Callable[[str], None] | None = None) -> None:
        self.shown: list[str] = []
        self._band_shows = band_shows
        loop = LoopThread()
        self.radio = VirtualRadio()
        band_keys, phone_keys = keystores or (None, None)
        self.service = loop.call(self._band(band, rng, band_keys))
        self.stack = loop.call(self._phone(confirm, phone_keys))
        super().__init__(loop, backend(self.stack), phone_id, confirm, rng, answer_timeout)

    async def _band(self, band: Band, rng: secure.Rng, keystore: Path | None) -> BandService:
        async def band_shows(number: int) -> bool:
            self._show(f"{number:06d}")
            return True

        service = BandService(band, self.radio.host(), address=BAND_ADDRESS, bonds=band.bonds,
                              rng=rng, confirm_number=band_shows, show_code=self._show,
                              advertising_interval_ms=20, keystore=keystore)
        await service.peripheral.start()
        return service

    async def _phone(self, confirm: Callable[[str], bool], keystore: Path | None) -> BumbleStack:
        # a virtual host is made inside the event loop
        stack = BumbleStack(self.radio.host(), confirm_number=_link_confirm(confirm),
                            keystore=keystore)
        await stack.start()
        return stack

    def _show(self, code: str) -> None:
        """The band's display: kept in ``shown``, and shown to whoever watches it."""
        self.shown.append(code)
        if self._band_shows is not None:
            self._band_shows(code)

    def close(self) -> None:
        super().close()
        self.loop.call(self.stack.stop())
        self.loop.call(self.service.peripheral.stop())
        self.radio.close()
        self.loop.stop()
