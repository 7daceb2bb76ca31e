"""A band and its phone on Bumble's virtual radio, in a thread of their own.

For when there is no Bluetooth controller: the command line pairs, lists
cards and relays over the same stacks, GATT service and app layer as on a
radio, only with both devices in one process. Tests use it too.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

from wallet.band import Band
from wallet.ble import secure
from wallet.ble.gatt import CompanionCentral, VirtualRadio
from wallet.ble.link import BandService, BleBand, LoopThread, PhoneChannel, open_session, pair_app
from wallet.ble.relay import PhoneEnd
from wallet.ble.spec import payload_size

BAND_ADDRESS, PHONE_ADDRESS = "C0:00:00:00:00:11", "C0:00:00:00:00:22"


class VirtualBle:
    """``band`` serving BLE and a phone with id ``phone_id``; ``confirm`` is the person who
    compares the six digits (both the link's and the app layer's)."""

    def __init__(self, band: Band, phone_id: bytes, confirm: Callable[[str], bool],
                 rng: secure.Rng = os.urandom, answer_timeout: float = 2.0) -> None:
        self.band, self.phone_id, self.confirm, self.rng = band, phone_id, confirm, rng
        self.answer_timeout = answer_timeout
        self.shown: list[str] = []  # what the band's display showed
        self.loop = LoopThread()
        self.loop.call(self._start())

    async def _start(self) -> None:
        async def compare(number: int) -> bool:
            return self.confirm(f"{number:06d}")

        async def band_shows(number: int) -> bool:
            self.shown.append(f"{number:06d}")
            return True

        self.radio = VirtualRadio()
        self.service = BandService(self.band, self.radio.host(), address=BAND_ADDRESS,
                                   bonds=self.band.bonds, rng=self.rng, confirm_number=band_shows,
                                   show_code=self.shown.append, advertising_interval_ms=20)
        self.central = CompanionCentral(self.radio.host(), address=PHONE_ADDRESS,
                                        confirm_number=compare)
        await self.service.peripheral.start()
        await self.central.start()

    def connect(self, ltk: bytes | None) -> tuple[BleBand, bytes]:
        """Find, connect and pair the link; pair the app layer too unless ``ltk`` (a stored
        pairing) is given; open a session. The band link and the app-layer key."""
        return self.loop.call(self._connect(ltk))

    async def _connect(self, ltk: bytes | None) -> tuple[BleBand, bytes]:
        found = await self.central.find_band(timeout=5)
        await self.central.connect(found.address, timeout=5)
        await self.central.pair(timeout=10)
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
        self.loop.call(self._close())
        self.loop.stop()

    async def _close(self) -> None:
        await self.central.close()
        await self.service.peripheral.stop()
        self.radio.close()
