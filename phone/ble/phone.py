"""The phone and the band on a radio: a Bluetooth controller, or Bumble's virtual one.

:class:`Phone` is the companion's BLE side on a Bumble host, for synchronous
callers (the command line, the companion's issuer client): it finds the
band, pairs the link and the app layer, and gives a
:class:`~phone.companion.BandLink`. The host comes from a Bumble transport
(``usb:0`` for a dongle, ``hci-socket:0`` on Linux, ``tcp-client:HOST:PORT``
for a controller elsewhere, e.g. Bumble's virtual controllers app,
:func:`phone_on_transport`), or from a virtual radio in this process with the
band alongside (:class:`VirtualBle`: the command line without a controller,
and tests; the one place the phone's package holds a band).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bumble.host import Host

from ble import secure
from ble.errors import BleError
from ble.link import BAND_ADDRESS, PHONE_ADDRESS, transport_host
from ble.spec import payload_size
from ble.virtual import VirtualRadio
from phone.ble.central import BandAdvertisement, CompanionCentral
from phone.ble.channel import BleBand, LoopThread, PhoneChannel, PhoneEnd, open_session, pair_app
from wallet.band import Band
from wallet.ble.service import BandService


class Phone:
    """The companion on a radio; ``confirm`` is its user comparing the six digits."""

    def __init__(self, loop: LoopThread, host: Host, phone_id: bytes,
                 confirm: Callable[[str], bool], rng: secure.Rng = os.urandom,
                 answer_timeout: float = 2.0, keystore: Path | None = None) -> None:
        self.loop, self.phone_id, self.confirm, self.rng = loop, phone_id, confirm, rng
        self.answer_timeout = answer_timeout

        async def compare(number: int) -> bool:
            return self.confirm(f"{number:06d}")

        self.central = CompanionCentral(host, address=PHONE_ADDRESS, confirm_number=compare,
                                        keystore=keystore)
        loop.call(self.central.start())

    def scan(self, timeout: float = 5.0) -> BandAdvertisement:
        return self.loop.call(self.central.find_band(timeout=timeout))

    def connect(self, ltk: bytes | None) -> tuple[BleBand, bytes]:
        """Find, connect and pair the link; pair the app layer too unless ``ltk`` (a stored
        pairing) is given; open a session. The band link and the app-layer key."""
        return self.loop.call(self._connect(ltk))

    async def _connect(self, ltk: bytes | None) -> tuple[BleBand, bytes]:
        found = await self.central.find_band(timeout=5)
        await self.central.connect(found.address, timeout=5)
        await self.central.secure(timeout=30)
        end = PhoneEnd(self.phone_id, self.rng, payload_size(self.central.mtu))
        channel = await PhoneChannel.open(self.central, end, timeout=self.answer_timeout)
        key = ltk or await pair_app(channel, self.phone_id, self.rng, self.confirm)
        await open_session(channel, self.phone_id, key, self.rng)
        return BleBand(self.loop, channel), key

    def cards(self) -> list[dict[str, Any]]:
        """The card list characteristic, as the phone reads it."""
        listed: list[dict[str, Any]] = json.loads(self.loop.call(self.central.read_card_list()))
        return listed

    def disconnect(self) -> None:
        self.loop.call(self.central.disconnect())
        self.loop.call(asyncio.sleep(0.05))

    def close(self) -> None:
        self.loop.call(self.central.stop())


def phone_on_transport(spec: str, phone_id: bytes, confirm: Callable[[str], bool],
                       keystore: Path | None = None) -> tuple[Phone, Callable[[], None]]:
    """A phone on a real (or remote virtual) controller, and how to let it go."""
    loop = LoopThread()
    try:
        host, close = loop.call(transport_host(spec))
    except BleError:
        loop.stop()
        raise
    phone = Phone(loop, host, phone_id, confirm, keystore=keystore)

    async def closed() -> None:
        await close()

    def release() -> None:
        phone.close()
        loop.call(closed())
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
        super().__init__(loop, loop.call(_host(self.radio)), phone_id, confirm, rng,
                         answer_timeout, phone_keys)

    async def _band(self, band: Band, rng: secure.Rng, keystore: Path | None) -> BandService:
        async def band_shows(number: int) -> bool:
            self._show(f"{number:06d}")
            return True

        service = BandService(band, self.radio.host(), address=BAND_ADDRESS, bonds=band.bonds,
                              rng=rng, confirm_number=band_shows, show_code=self._show,
                              advertising_interval_ms=20, keystore=keystore)
        await service.peripheral.start()
        return service

    def _show(self, code: str) -> None:
        """The band's display: kept in ``shown``, and shown to whoever watches it."""
        self.shown.append(code)
        if self._band_shows is not None:
            self._band_shows(code)

    def close(self) -> None:
        super().close()
        self.loop.call(self.service.peripheral.stop())
        self.radio.close()
        self.loop.stop()


async def _host(radio: VirtualRadio) -> Host:
    return radio.host()  # a virtual host is made inside the event loop
