"""The phone's end of the relay over BLE: the values it writes, the answers it waits for.

:class:`PhoneEnd` is the relay without I/O (:mod:`ble.relay` says what the
messages carry). :class:`PhoneChannel` runs it over a
:class:`~phone.ble.central.BandCentral`: it writes every fragment of a
message but the last as a Write Command and the last with response, writes
again what the band says it lacks, and a round trip whose answer does not
arrive asks the band to resend, then gives up with
:class:`~ble.errors.BleError`; a link bleak says is gone ends it at once with
:class:`~ble.errors.NotConnected`. Either way the issuer's order waits for the
next contact, exactly as after a dropped HTTP relay. :class:`BleBand` is the
companion's :class:`~phone.companion.BandLink` over BLE: the companion and its
issuer client are synchronous, the Bluetooth stack is asyncio, so it runs the
stack on an event loop in a thread of its own (:class:`LoopThread`) and waits
for each round trip.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ble import relay, secure
from ble.errors import BleError, NotConnected
from ble.framing import FramingError, Reassembler, Sender, is_resend_request
from phone.ble.central import BandCentral

T = TypeVar("T")
ANSWER_TIMEOUT_S = 2.0
RESENDS = 3


@dataclass(frozen=True, slots=True)
class Heard:
    """What one notification from the band gave the phone: nothing yet, the band's whole
    message, or the phone's fragments the band lacks (to write again)."""

    message: bytes | None = None
    again: tuple[bytes, ...] = ()


@dataclass(slots=True)
class PhoneEnd:
    """The phone's end: the values to write for each message, and the answers it gets."""

    phone_id: bytes
    rng: secure.Rng
    payload: int
    sender: Sender = field(init=False)
    receiver: Reassembler = field(default_factory=Reassembler)
    session: secure.Session | None = None

    def __post_init__(self) -> None:
        self.sender = Sender(self.payload)

    def send(self, message: bytes) -> list[bytes]:
        """The values to write for an app-layer message."""
        return self.sender.fragments(message)

    def seal_batch(self, commands: Sequence[bytes]) -> list[bytes]:
        return self.send(self._session().seal(relay.encode_apdus(relay.BATCH, commands)))

    def seal_reset(self) -> list[bytes]:
        return self.send(self._session().seal(bytes((relay.RESET,))))

    def seal_control(self, kind: int, data: bytes = b"") -> list[bytes]:
        """Unlock, lock, or choose the express card (``data``: its AID)."""
        if kind not in (relay.UNLOCK, relay.LOCK, relay.EXPRESS):
            raise relay.RelayError(f"no control command {kind:02X}")
        return self.send(self._session().seal(bytes((kind,)) + data))

    def open_state(self, message: bytes) -> tuple[bool, bool]:
        """(locked, on wrist) after a control command; a RelayError with the band's reason."""
        answer = self._session().open(message)
        if answer[:1] == bytes((relay.REFUSED,)):
            raise relay.RelayError(f"the band refused: {answer[1:].decode(errors='replace')}")
        if len(answer) != 3 or answer[0] != relay.STATE:
            raise relay.RelayError("the band answered no state")
        return bool(answer[1]), bool(answer[2])

    def on_notify(self, value: bytes) -> Heard:
        """A value notified on "relay out": the whole message once its last fragment came, or
        the fragments to write again when the band asks for them."""
        if is_resend_request(value):
            try:
                return Heard(again=tuple(self.sender.resend(value)))
            except FramingError:
                return Heard()
        try:
            return Heard(message=self.receiver.receive(value))
        except FramingError:
            return Heard()

    def open_answers(self, message: bytes) -> list[bytes]:
        return relay.decode_apdus(self._session().open(message), relay.ANSWERS)

    def open_reset(self, message: bytes) -> None:
        if self._session().open(message) != bytes((relay.RESET_DONE,)):
            raise relay.RelayError("the band did not start its secure element over")

    def _session(self) -> secure.Session:
        if self.session is None:
            raise relay.RelayError("no session with the band: say hello first")
        return self.session


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

    central: BandCentral
    end: PhoneEnd
    heard: asyncio.Queue[Heard]
    timeout: float = ANSWER_TIMEOUT_S  # for each answer, before asking the band to resend

    @classmethod
    async def open(cls, central: BandCentral, end: PhoneEnd,
                   timeout: float = ANSWER_TIMEOUT_S) -> PhoneChannel:
        channel = cls(central, end, asyncio.Queue(), timeout)
        await central.subscribe_relay(channel._on_notify)
        return channel

    def _on_notify(self, value: bytes) -> None:
        heard = self.end.on_notify(value)
        if heard.message is not None or heard.again:
            self.heard.put_nowait(heard)

    async def exchange(self, values: list[bytes]) -> bytes:
        """Write a message's values; the band's answer (asking again for what got lost, and
        writing again what the band did not get)."""
        await self._write(values)
        for _ in range(RESENDS):
            try:
                while (heard := await self._next()).message is None:
                    await self._write(list(heard.again))
                return heard.message
            except TimeoutError:
                # The answer or the band's own request got lost: our last fragment again makes
                # the band ask for what it lacks, if anything; then we ask for its answer.
                await self.central.write_relay(self.end.sender.last[-1])
                await self.central.write_relay(self.end.receiver.resend_request())
        raise BleError("the band stopped answering the relay")

    async def _write(self, values: Sequence[bytes]) -> None:
        """Write Commands for all but the last value, which goes with response: the band has
        the whole message, or knows what it lacks, when it returns."""
        for value in values[:-1]:
            await self.central.write_relay(value, response=False)
        if values:
            await self.central.write_relay(values[-1])

    async def _next(self) -> Heard:
        """What the band says next, within the timeout; NotConnected as soon as bleak's
        disconnect callback says the band is gone."""
        heard = asyncio.ensure_future(self.heard.get())
        gone = asyncio.ensure_future(self.central.wait_disconnected())
        try:
            await asyncio.wait((heard, gone), timeout=self.timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not heard.done():
                heard.cancel()
        if heard.done():
            return heard.result()
        if gone.done() and not gone.cancelled():
            raise NotConnected("the band disconnected before it answered the relay")
        raise TimeoutError


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

    def control(self, kind: int, data: bytes = b"") -> tuple[bool, bool]:
        """Unlock, lock or choose the express card (``relay.UNLOCK``, ``LOCK``, ``EXPRESS``
        with its AID), as the phone's user confirmed; the band's (locked, on wrist) after it,
        or a RelayError with the band's reason."""
        return self._loop.call(self._control(kind, data))

    async def _reset(self) -> None:
        end = self._channel.end
        end.open_reset(await self._channel.exchange(end.seal_reset()))

    async def _run(self, commands: list[bytes]) -> list[bytes]:
        end = self._channel.end
        return end.open_answers(await self._channel.exchange(end.seal_batch(commands)))

    async def _control(self, kind: int, data: bytes) -> tuple[bool, bool]:
        end = self._channel.end
        return end.open_state(await self._channel.exchange(end.seal_control(kind, data)))
