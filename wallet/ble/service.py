"""The band's BLE service over its secure element: the relay's band end, the GATT server's values.

:class:`BandEnd` is the relay without I/O: it takes each value written to
"relay in" and returns the values to notify on "relay out" (:mod:`ble.relay`
says what they carry). :class:`BandService` joins it to the band's GATT
server (:mod:`wallet.ble.peripheral`): every value written to "relay in" or
the control point goes through it, and what it answers is notified on "relay
out". :func:`advertise` serves a band on a Bluetooth controller until told
to stop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from applets.gp.cplc import cplc
from ble import relay, secure
from ble.errors import NotAuthorized
from ble.framing import FramingError, Reassembler, Sender, is_resend_request
from ble.link import ATT_MTU, BAND_ADDRESS, ConfirmNumber, transport_host
from ble.spec import payload_size
from common.relay import run_batch
from wallet.band import Band
from wallet.ble.peripheral import BandPeripheral
from wallet.errors import WalletError

FIRMWARE = "koala-band 1.0"


def band_id(band: Band) -> bytes:
    """The band's 6-byte id on BLE and in app pairing: a digest of its CPLC, not its UID."""
    return hashlib.sha256(cplc(band.uid)).digest()[:secure.ID_SIZE]


@dataclass(slots=True)
class BandEnd:
    """The band's end: pairing, sessions, and the phone's batches run on the band."""

    band: Band
    band_id: bytes
    bonds: MutableMapping[bytes, bytes]  # phone id → LTK (the band keeps them)
    rng: secure.Rng
    payload: int
    show_code: Callable[[str], None] = print
    sender: Sender = field(init=False)
    receiver: Reassembler = field(default_factory=Reassembler)
    pairing: secure.BandPairing | None = None
    session: secure.Session | None = None

    def __post_init__(self) -> None:
        self.sender = Sender(self.payload)

    def on_write(self, value: bytes) -> list[bytes]:
        """A value written to "relay in"; the values to notify on "relay out"."""
        if is_resend_request(value):
            return self.sender.resend(value)
        try:
            message = self.receiver.receive(value)
        except FramingError:
            return []  # noise on the link: the phone will ask again
        if message is None:
            # Write Commands carry all but the last fragment, unacknowledged: ask for the lost
            asked = self.receiver.missing(value)
            return [asked] if asked is not None else []
        answer = self._answer(message)
        return self.sender.fragments(answer) if answer is not None else []

    def _answer(self, message: bytes) -> bytes | None:
        if not message:
            return None
        kind = message[0]
        try:
            if kind in relay.PAIRING:
                return self._pair(message)
            if kind == secure.HELLO:
                ack, self.session = secure.band_accept(message, self.bonds, self.rng)
                return ack
            if self.session is None:
                return None  # no session: nothing but pairing and hello is heard
            request = self.session.open(message)
            return self.session.seal(self._run(request))
        except (secure.SecurityError, relay.RelayError):
            return None  # refused: a phone that is not paired learns nothing

    def _pair(self, message: bytes) -> bytes:
        if message[0] == secure.PAIR_REQUEST:
            self.pairing = secure.BandPairing(self.band_id, self.rng)
        if self.pairing is None:
            raise secure.PairingFailed("no pairing in progress")
        answer = self.pairing.receive(message)
        if message[0] == secure.PAIR_RANDOM_A and self.pairing.code is not None:
            self.show_code(self.pairing.code)
        if message[0] == secure.PAIR_CHECK_A:
            phone_id, ltk = self.pairing.bond
            self.bonds[phone_id] = ltk
            self.pairing = None
        return answer

    def _run(self, request: bytes) -> bytes:
        kind = request[:1]
        if kind == bytes((relay.RESET,)):
            self.band.power_on()
            return bytes((relay.RESET_DONE,))
        if kind in (bytes((relay.UNLOCK,)), bytes((relay.LOCK,)), bytes((relay.EXPRESS,))):
            return self._control(request)
        commands = relay.decode_apdus(request, relay.BATCH)
        return relay.encode_apdus(relay.ANSWERS, run_batch(self.band.transmit, commands))

    def _control(self, request: bytes) -> bytes:
        try:
            if request[0] == relay.UNLOCK:
                self.band.unlock()
            elif request[0] == relay.LOCK:
                self.band.lock()
            else:
                self.band.set_express(request[1:])
        except WalletError as refused:
            return bytes((relay.REFUSED,)) + str(refused).encode()
        return bytes((relay.STATE, self.band.locked, self.band.on_wrist))


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


async def advertise(band: Band, spec: str, confirm_number: ConfirmNumber,
                    show_code: Callable[[str], None], stop: asyncio.Event,
                    on_change: Callable[[], None], keystore: Path | None = None) -> None:
    """Serve the band on the controller behind ``spec`` until ``stop`` is set; ``on_change``
    runs after every relay message that may have changed the band (to save its image)."""
    host, close = await transport_host(spec)
    service = BandService(band, host, address=BAND_ADDRESS, bonds=band.bonds, rng=os.urandom,
                          confirm_number=confirm_number, show_code=show_code, keystore=keystore)
    service.after_write = on_change
    await service.peripheral.start()
    try:
        await stop.wait()
    finally:
        await service.peripheral.stop()
        await close()
