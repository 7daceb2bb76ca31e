"""The relay over BLE, end to end: the band's service on its secure element, the phone's band link.

:class:`BandService` joins the band's GATT server (:mod:`wallet.ble.gatt`) to
the relay's band end (:mod:`wallet.ble.relay`): every value written to
"relay in" goes through it, and what it answers is notified on "relay out".
:class:`BleBand` is the companion's :class:`~phone.companion.BandLink` over
BLE: the companion and its issuer client are synchronous, the Bluetooth
stack is asyncio, so it runs the stack on an event loop in a thread of its
own (:class:`LoopThread`) and waits for each round trip. A round trip whose
answer does not arrive asks the band to resend, then gives up with
:class:`~wallet.ble.errors.BleError`; the issuer's order waits for the next
contact, exactly as after a dropped HTTP relay.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from applets.gp.cplc import cplc
from wallet.band import Band
from wallet.ble import secure
from wallet.ble.errors import BleError, NotAuthorized
from wallet.ble.gatt import ATT_MTU, BandPeripheral, CompanionCentral, ConfirmNumber
from wallet.ble.relay import BandEnd, PhoneEnd
from wallet.ble.spec import payload_size

T = TypeVar("T")
FIRMWARE = "koala-band 1.0"
ANSWER_TIMEOUT_S = 2.0
RESENDS = 3


def band_id(band: Band) -> bytes:
    """The band's 6-byte id on BLE and in app pairing: a digest of its CPLC, not its UID."""
    return hashlib.sha256(cplc(band.uid)).digest()[:secure.ID_SIZE]


class BandService:
    """The band's BLE side: the GATT service over its secure element and its bonds."""

    def __init__(self, band: Band, peripheral_host: Any, *, address: str,
                 bonds: MutableMapping[bytes, bytes], rng: secure.Rng,
                 confirm_number: ConfirmNumber, show_code: Callable[[str], None],
                 mtu: int = ATT_MTU, advertising_interval_ms: float = 100.0,
                 keystore: Path | None = None) -> None:
        self.band = band
        self.band_id = band_id(band)
        self._bonds, self._rng, self._show_code, self._payload = bonds, rng, show_code, \
            payload_size(mtu)
        self.end = self._new_end()
        self.peripheral = BandPeripheral(
            peripheral_host, address=address, name_suffix=self.band_id.hex()[:4].upper(),
            band_info=self._info, card_list=self._cards, on_control=self._relay,
            on_relay=self._relay, confirm_number=confirm_number, mtu=mtu,
            advertising_interval_ms=advertising_interval_ms, keystore=keystore)
        self.peripheral.on_connection = self._connected
        #: Runs after each relay write the band handled (a daemon saves the band's image here).
        self.after_write: Callable[[], None] | None = None

    def _connected(self) -> None:
        """A new connection: no session, no fragments, message numbers from the start."""
        self.end = self._new_end()

    def _new_end(self) -> BandEnd:
        return BandEnd(self.band, self.band_id, self._bonds, self._rng, self._payload,
                       self._show_code)

    def _info(self) -> bytes:
        return json.dumps({"id": self.band_id.hex(), "firmware": FIRMWARE,
                           "battery": 87, "on_wrist": self.band.on_wrist}).encode()

    def _cards(self) -> bytes:
        """Only to a phone in session: a link any phone may pair with is not enough, and a
        revoked phone gets nothing but the band info."""
        if self.end.session is None:
            raise NotAuthorized("open a session (a paired phone's hello) to read the cards")
        return json.dumps(self.band.card_list()).encode()

    async def _relay(self, value: bytes) -> None:
        answers = self.end.on_write(value)
        if self.after_write is not None:
            self.after_write()
        for out in answers:
            await self.peripheral.notify_relay(out)


class LoopThread:
    """An asyncio event loop on a daemon thread, for synchronous callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="koala-ble")
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@dataclass(slots=True)
class PhoneChannel:
    """The phone's end of one BLE connection: writes values, collects the band's messages."""

    central: CompanionCentral
    end: PhoneEnd
    messages: asyncio.Queue[bytes]
    timeout: float = ANSWER_TIMEOUT_S  # for each answer, before asking the band to resend

    @classmethod
    async def open(cls, central: CompanionCentral, end: PhoneEnd,
                   timeout: float = ANSWER_TIMEOUT_S) -> PhoneChannel:
        channel = cls(central, end, asyncio.Queue(), timeout)
        await central.subscribe_relay(channel._on_notify)
        return channel

    def _on_notify(self, value: bytes) -> None:
        message = self.end.on_notify(value)
        if message is not None:
            self.messages.put_nowait(message)

    async def exchange(self, values: list[bytes]) -> bytes:
        """Write a message's values; the band's answer (asking again for what got lost)."""
        for value in values:
            await self.central.write_relay(value)
        for _ in range(RESENDS):
            try:
                return await asyncio.wait_for(self.messages.get(), self.timeout)
            except TimeoutError:
                await self.central.write_relay(self.end.receiver.resend_request())
        raise BleError("the band stopped answering the relay")


async def pair_app(channel: PhoneChannel, phone_id: bytes, rng: secure.Rng,
                   user_confirms: Callable[[str], bool]) -> bytes:
    """The app-layer pairing from the phone; the LTK to keep for this band."""
    pairing = secure.PhonePairing(phone_id, rng)
    random_a = pairing.receive(await channel.exchange(channel.end.send(pairing.start())))
    if random_a is None or pairing.receive(
            await channel.exchange(channel.end.send(random_a))) is not None:
        raise secure.PairingFailed("the band did not follow the pairing")
    check = pairing.confirm(user_confirms(pairing.code or ""))
    pairing.receive(await channel.exchange(channel.end.send(check)))
    return pairing.bond[1]


async def open_session(channel: PhoneChannel, phone_id: bytes, ltk: bytes,
                       rng: secure.Rng) -> None:
    hello, nonce = secure.phone_hello(phone_id, rng)
    channel.end.session = secure.phone_session(await channel.exchange(channel.end.send(hello)),
                                               ltk, nonce)


class BleBand:
    """The companion's band over BLE (a :class:`~phone.companion.BandLink`)."""

    def __init__(self, loop: LoopThread, channel: PhoneChannel) -> None:
        self._loop = loop
        self._channel = channel

    def reset(self) -> None:
        self._loop.call(self._reset())

    def run(self, commands: list[bytes]) -> list[bytes]:
        return self._loop.call(self._run(commands))

    async def _reset(self) -> None:
        end = self._channel.end
        end.open_reset(await self._channel.exchange(end.seal_reset()))

    async def _run(self, commands: list[bytes]) -> list[bytes]:
        end = self._channel.end
        return end.open_answers(await self._channel.exchange(end.seal_batch(commands)))
