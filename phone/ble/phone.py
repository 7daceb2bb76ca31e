"""The phone on a Bluetooth stack, for synchronous callers (the command line, the companion).

:class:`Phone` is the companion's BLE side: it finds the band, pairs the link
and the app layer, and gives a :class:`~phone.companion.BandLink`. It runs
:class:`~phone.ble.central.BandCentral` on a bleak backend: bleak's own for
this operating system by default, or our Bumble one on a controller or a
virtual radio (:mod:`phone.ble.bumble_backend`, which also puts a band beside
the phone, ``VirtualBle``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

from ble import secure
from phone.ble.central import Backend, BandAdvertisement, BandCentral
from phone.ble.channel import BleBand, LoopThread, PhoneChannel, PhoneEnd, open_session, pair_app


class Phone:
    """The companion on a bleak backend; ``confirm`` is its user comparing the six digits of
    the app layer's pairing (the link's are the stack's to ask)."""

    def __init__(self, loop: LoopThread, backend: Backend, phone_id: bytes,
                 confirm: Callable[[str], bool], rng: secure.Rng = os.urandom,
                 answer_timeout: float = 2.0) -> None:
        self.loop, self.phone_id, self.confirm, self.rng = loop, phone_id, confirm, rng
        self.answer_timeout = answer_timeout
        self.central = BandCentral(backend)

    def scan(self, timeout: float = 5.0) -> BandAdvertisement:
        return self.loop.call(self.central.find_band(timeout=timeout))

    def connect(self, ltk: bytes | None) -> tuple[BleBand, bytes]:
        """Find, connect and pair the link; pair the app layer too unless ``ltk`` (a stored
        pairing) is given; open a session. The band link and the app-layer key."""
        return self.loop.call(self._connect(ltk))

    async def _connect(self, ltk: bytes | None) -> tuple[BleBand, bytes]:
        found = await self.central.find_band(timeout=5)
        await self.central.connect(found, timeout=5)
        await self.central.pair(timeout=30)
        end = PhoneEnd(self.phone_id, self.rng, self.central.payload)
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
        self.loop.call(self.central.disconnect())


def phone_on_os(phone_id: bytes, confirm: Callable[[str], bool]) -> tuple[Phone, Callable[[], None]]:
    """A phone on this machine's own Bluetooth stack (bleak's backend for the OS), and how to
    let it go."""
    loop = LoopThread()
    phone = Phone(loop, Backend(), phone_id, confirm)

    def release() -> None:
        phone.close()
        loop.stop()

    return phone, release
