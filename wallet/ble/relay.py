"""The relay's two ends above GATT, without I/O: what the band and the phone do with each value.

The band (:class:`BandEnd`) takes each value written to "relay in" and
returns the values to notify on "relay out"; the phone (:class:`PhoneEnd`)
builds the values to write and takes the notified ones. In between, every
message is an app-layer message (:mod:`wallet.ble.secure`): pairing messages
in the clear (the link is encrypted; the pairing needs no secrecy from it),
a hello that opens a session, then sealed frames whose plaintext is one of

===========  ============================================  ========================
request      content                                       answer
===========  ============================================  ========================
01 batch     count, then each C-APDU with a 2-byte length  81: the R-APDUs likewise
             (the band runs them as the issuer's relay
             does, :func:`common.relay.run_batch`)
02 reset     —                                             82: the secure element
                                                           starts over (as on a new
                                                           tap)
03 unlock    — (the phone's user has confirmed it)         83 ‖ locked ‖ on wrist,
04 lock      —                                             or 8F ‖ why (UTF-8)
05 express   the AID of the card gates take while locked
===========  ============================================  ========================

The control point takes the same sealed frames as relay in (its answers
come on relay out), so a control command is as authentic as a relay one.

The band runs what it is sent on its secure element exactly as a reader's
field would: a paired phone gains no power over the cards, which refuse
card-changing commands outside the issuer's secure channel themselves.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field

from common.relay import run_batch
from wallet.band import Band
from wallet.ble import secure
from wallet.ble.framing import FramingError, Reassembler, Sender, is_resend_request
from wallet.errors import WalletError

BATCH, RESET, UNLOCK, LOCK, EXPRESS = 0x01, 0x02, 0x03, 0x04, 0x05
ANSWERS, RESET_DONE, STATE, REFUSED = 0x81, 0x82, 0x83, 0x8F
PAIRING = frozenset({secure.PAIR_REQUEST, secure.PAIR_RANDOM_A, secure.PAIR_CHECK_A})


class RelayError(WalletError):
    """A relay message that does not parse, or an answer the band never gave."""


def encode_apdus(kind: int, apdus: Sequence[bytes]) -> bytes:
    if len(apdus) > 255:
        raise RelayError("a batch holds at most 255 APDUs")
    return bytes((kind, len(apdus))) + b"".join(len(a).to_bytes(2) + a for a in apdus)


def decode_apdus(message: bytes, kind: int) -> list[bytes]:
    if len(message) < 2 or message[0] != kind:
        raise RelayError(f"expected a relay message of kind {kind:02X}")
    apdus, i = [], 2
    for _ in range(message[1]):
        if i + 2 > len(message):
            raise RelayError("a truncated batch")
        size = int.from_bytes(message[i:i + 2])
        apdus.append(message[i + 2:i + 2 + size])
        if len(apdus[-1]) != size:
            raise RelayError("a truncated APDU")
        i += 2 + size
    if i != len(message):
        raise RelayError("bytes after the batch")
    return apdus


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
            return []
        answer = self._answer(message)
        return self.sender.fragments(answer) if answer is not None else []

    def _answer(self, message: bytes) -> bytes | None:
        if not message:
            return None
        kind = message[0]
        try:
            if kind in PAIRING:
                return self._pair(message)
            if kind == secure.HELLO:
                ack, self.session = secure.band_accept(message, self.bonds, self.rng)
                return ack
            if self.session is None:
                return None  # no session: nothing but pairing and hello is heard
            request = self.session.open(message)
            return self.session.seal(self._run(request))
        except (secure.SecurityError, RelayError):
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
        if kind == bytes((RESET,)):
            self.band.power_on()
            return bytes((RESET_DONE,))
        if kind in (bytes((UNLOCK,)), bytes((LOCK,)), bytes((EXPRESS,))):
            return self._control(request)
        commands = decode_apdus(request, BATCH)
        return encode_apdus(ANSWERS, run_batch(self.band.transmit, commands))

    def _control(self, request: bytes) -> bytes:
        try:
            if request[0] == UNLOCK:
                self.band.unlock()
            elif request[0] == LOCK:
                self.band.lock()
            else:
                self.band.set_express(request[1:])
        except WalletError as refused:
            return bytes((REFUSED,)) + str(refused).encode()
        return bytes((STATE, self.band.locked, self.band.on_wrist))


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
        return self.send(self._session().seal(encode_apdus(BATCH, commands)))

    def seal_reset(self) -> list[bytes]:
        return self.send(self._session().seal(bytes((RESET,))))

    def seal_control(self, kind: int, data: bytes = b"") -> list[bytes]:
        """Unlock, lock, or choose the express card (``data``: its AID)."""
        if kind not in (UNLOCK, LOCK, EXPRESS):
            raise RelayError(f"no control command {kind:02X}")
        return self.send(self._session().seal(bytes((kind,)) + data))

    def open_state(self, message: bytes) -> tuple[bool, bool]:
        """(locked, on wrist) after a control command; RelayError with the band's reason."""
        answer = self._session().open(message)
        if answer[:1] == bytes((REFUSED,)):
            raise RelayError(f"the band refused: {answer[1:].decode(errors='replace')}")
        if len(answer) != 3 or answer[0] != STATE:
            raise RelayError("the band answered no state")
        return bool(answer[1]), bool(answer[2])

    def on_notify(self, value: bytes) -> bytes | None:
        """A value notified on "relay out"; the whole message once its last fragment came."""
        try:
            return self.receiver.receive(value)
        except FramingError:
            return None

    def open_answers(self, message: bytes) -> list[bytes]:
        return decode_apdus(self._session().open(message), ANSWERS)

    def open_reset(self, message: bytes) -> None:
        if self._session().open(message) != bytes((RESET_DONE,)):
            raise RelayError("the band did not start its secure element over")

    def _session(self) -> secure.Session:
        if self.session is None:
            raise RelayError("no session with the band: say hello first")
        return self.session
