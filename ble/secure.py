"""The app layer above GATT: pairing a companion to the band, and sealing every relay frame.

The link's LE Secure Connections encryption protects the air, but ends in the
phone's Bluetooth stack, which the band does not trust. So the companion
pairs with the band once more, end to end, in the same way (numeric
comparison over P-256, with the specification's toolbox, :mod:`ble.toolbox`):

====  ===========  ==============================================  ====================
step  direction    message                                         check
====  ===========  ==============================================  ====================
1     phone→band   01 ‖ phone id (6) ‖ PKa (64)
2     band→phone   02 ‖ band id (6) ‖ PKb (64) ‖ Cb = f4(PKbx,       —
                   PKax, Nb, 0)
3     phone→band   03 ‖ Na (16)
4     band→phone   04 ‖ Nb (16)                                    phone: Cb
5     both         six digits of g2(PKax, PKbx, Na, Nb): the band   the user confirms on
                   shows them, the phone asks its user              the phone
6     phone→band   05 ‖ Ea = f6(MacKey, Na, Nb, 0, io, A, B)          band: Ea
7     band→phone   06 ‖ Eb = f6(MacKey, Nb, Na, 0, io, B, A)          phone: Eb
====  ===========  ==============================================  ====================

MacKey and the pairing key (LTK) come from f5 over the ECDH secret; both
sides keep the LTK under the other's id (the band: a bond per phone, which
it can revoke). Each connection then starts a session, ``10 ‖ phone id ‖
Sa`` and ``11 ‖ Sb``, whose key is AES-CMAC(LTK, "koala relay" ‖ Sa ‖ Sb),
and every relay frame is ``20 ‖ counter (4) ‖ AES-CCM(plaintext)`` with an
8-byte tag, the direction and counter in its nonce and associated data.
A frame whose counter is not above the last one accepted (a replay, or one
out of order), or whose tag fails (altered, or sealed for the other
direction), is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from applets.crypto.scp03 import aes_cmac
from ble import toolbox
from ble.errors import BleError

Rng = Callable[[int], bytes]
ID_SIZE, KEY_SIZE, NONCE_SIZE, SESSION_NONCE_SIZE = 6, 16, 16, 8
TAG_SIZE, COUNTER_SIZE = 8, 4
#: IO capabilities as f6 takes them: DisplayYesNo, no OOB, bonding with MITM and SC.
IO_CAP = bytes((0x01, 0x00, 0x2D))
PAIR_REQUEST, PAIR_RESPONSE, PAIR_RANDOM_A, PAIR_RANDOM_B = 0x01, 0x02, 0x03, 0x04
PAIR_CHECK_A, PAIR_CHECK_B, HELLO, HELLO_ACK, DATA = 0x05, 0x06, 0x10, 0x11, 0x20
SESSION_LABEL = b"koala relay"
TO_BAND, TO_PHONE = 0x01, 0x02


class SecurityError(BleError):
    """Something on the app layer failed its check; the message says which."""


class PairingFailed(SecurityError):
    """The pairing cannot complete (a check failed, or the user did not confirm)."""


class FrameRejected(SecurityError):
    """A relay frame was replayed, reordered, altered, or came from no paired phone."""


def _expect(message: bytes, opcode: int, size: int) -> bytes:
    if len(message) != 1 + size or message[0] != opcode:
        raise PairingFailed(f"expected message {opcode:02X} of {size} bytes")
    return message[1:]


def _public(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    return numbers.x.to_bytes(32) + numbers.y.to_bytes(32)


def dhkey(key: ec.EllipticCurvePrivateKey, peer: bytes) -> bytes:
    """The P-256 shared secret with a peer's 64-byte public key (x ‖ y); PairingFailed when
    the point is not on the curve."""
    try:
        public = ec.EllipticCurvePublicNumbers(int.from_bytes(peer[:32]), int.from_bytes(peer[32:]),
                                               ec.SECP256R1()).public_key()
    except ValueError as error:
        raise PairingFailed(f"the peer's public key is not a P-256 point: {error}") from error
    return key.exchange(ec.ECDH(), public)


def _address(identity: bytes) -> bytes:
    """A 7-byte f5/f6 address: type 00 then the 6-byte id."""
    return b"\x00" + identity


class _Step(Enum):
    START = "start"
    COMMITTED = "committed"  # band: sent Cb / phone: sent PKa
    RANDOM = "random"  # band: got Na / phone: sent Na
    COMPARE = "compare"  # both know the code; the user decides
    DONE = "done"


@dataclass(slots=True)
class _Keys:
    local: ec.EllipticCurvePrivateKey
    peer_public: bytes = b""
    peer_id: bytes = b""
    nonce: bytes = b""
    peer_nonce: bytes = b""
    commitment: bytes = b""
    mac_key: bytes = b""
    ltk: bytes = b""


class BandPairing:
    """The band's side of a pairing: answers the phone, shows the code, checks Ea."""

    def __init__(self, band_id: bytes, rng: Rng) -> None:
        self.band_id = band_id
        self._rng = rng
        self._keys = _Keys(ec.generate_private_key(ec.SECP256R1()))
        self._step = _Step.START
        self.code: str | None = None

    def receive(self, message: bytes) -> bytes:
        """The answer to the phone's next pairing message."""
        k = self._keys
        if self._step is _Step.START:
            body = _expect(message, PAIR_REQUEST, ID_SIZE + 64)
            k.peer_id, k.peer_public = body[:ID_SIZE], body[ID_SIZE:]
            k.nonce = self._rng(NONCE_SIZE)
            k.commitment = toolbox.f4(_public(k.local)[:32], k.peer_public[:32], k.nonce, b"\0")
            self._step = _Step.COMMITTED
            return bytes((PAIR_RESPONSE,)) + self.band_id + _public(k.local) + k.commitment
        if self._step is _Step.COMMITTED:
            k.peer_nonce = _expect(message, PAIR_RANDOM_A, NONCE_SIZE)
            self.code = toolbox.code(toolbox.g2(k.peer_public[:32], _public(k.local)[:32],
                                                k.peer_nonce, k.nonce))
            k.mac_key, k.ltk = toolbox.f5(dhkey(k.local, k.peer_public), k.peer_nonce, k.nonce,
                                          _address(k.peer_id), _address(self.band_id))
            self._step = _Step.COMPARE
            return bytes((PAIR_RANDOM_B,)) + k.nonce
        if self._step is _Step.COMPARE:
            check = _expect(message, PAIR_CHECK_A, KEY_SIZE)
            expected = toolbox.f6(k.mac_key, k.peer_nonce, k.nonce, bytes(16), IO_CAP,
                                  _address(k.peer_id), _address(self.band_id))
            if not hmac.compare_digest(check, expected):
                self._step = _Step.DONE
                raise PairingFailed("the phone's DHKey check failed: not the same secret")
            self._step = _Step.DONE
            return bytes((PAIR_CHECK_B,)) + toolbox.f6(
                k.mac_key, k.nonce, k.peer_nonce, bytes(16), IO_CAP, _address(self.band_id),
                _address(k.peer_id))
        raise PairingFailed("the pairing is over")

    @property
    def bond(self) -> tuple[bytes, bytes]:
        """(phone id, LTK) once the pairing has completed."""
        if self._step is not _Step.DONE or not self._keys.ltk:
            raise PairingFailed("the pairing has not completed")
        return self._keys.peer_id, self._keys.ltk


class PhonePairing:
    """The companion's side: starts, checks the band's commitment, and waits for its user."""

    def __init__(self, phone_id: bytes, rng: Rng) -> None:
        self.phone_id = phone_id
        self._rng = rng
        self._keys = _Keys(ec.generate_private_key(ec.SECP256R1()))
        self._step = _Step.START
        self._verified = False
        self.code: str | None = None
        self.band_id = b""

    def start(self) -> bytes:
        self._step = _Step.COMMITTED
        return bytes((PAIR_REQUEST,)) + self.phone_id + _public(self._keys.local)

    def receive(self, message: bytes) -> bytes | None:
        """The answer to the band's message; None while the user has to compare the codes."""
        k = self._keys
        if self._step is _Step.COMMITTED:
            body = _expect(message, PAIR_RESPONSE, ID_SIZE + 64 + 16)
            self.band_id, k.peer_public, k.commitment = body[:6], body[6:70], body[70:]
            k.nonce = self._rng(NONCE_SIZE)
            self._step = _Step.RANDOM
            return bytes((PAIR_RANDOM_A,)) + k.nonce
        if self._step is _Step.RANDOM:
            k.peer_nonce = _expect(message, PAIR_RANDOM_B, NONCE_SIZE)
            commitment = toolbox.f4(k.peer_public[:32], _public(k.local)[:32], k.peer_nonce, b"\0")
            if not hmac.compare_digest(commitment, k.commitment):
                self._step = _Step.DONE
                raise PairingFailed("the band's commitment does not match its nonce")
            self.code = toolbox.code(toolbox.g2(_public(k.local)[:32], k.peer_public[:32],
                                                k.nonce, k.peer_nonce))
            k.mac_key, k.ltk = toolbox.f5(dhkey(k.local, k.peer_public), k.nonce, k.peer_nonce,
                                          _address(self.phone_id), _address(self.band_id))
            self._step = _Step.COMPARE
            return None
        if self._step is _Step.DONE and message[:1] == bytes((PAIR_CHECK_B,)):
            check = _expect(message, PAIR_CHECK_B, KEY_SIZE)
            expected = toolbox.f6(k.mac_key, k.peer_nonce, k.nonce, bytes(16), IO_CAP,
                                  _address(self.band_id), _address(self.phone_id))
            if not hmac.compare_digest(check, expected):
                k.ltk = b""
                raise PairingFailed("the band's DHKey check failed: not the same secret")
            self._verified = True
            return None
        raise PairingFailed("unexpected pairing message")

    def confirm(self, same: bool) -> bytes:
        """The user's answer to "does the band show these six digits?"; the DHKey check."""
        if self._step is not _Step.COMPARE:
            raise PairingFailed("there is no code to confirm yet")
        self._step = _Step.DONE
        if not same:
            self._keys.ltk = b""
            raise PairingFailed("the codes differ: someone else may be in the middle")
        k = self._keys
        return bytes((PAIR_CHECK_A,)) + toolbox.f6(k.mac_key, k.nonce, k.peer_nonce, bytes(16),
                                                   IO_CAP, _address(self.phone_id),
                                                   _address(self.band_id))

    @property
    def bond(self) -> tuple[bytes, bytes]:
        """(band id, LTK) once the pairing has completed."""
        if not self._verified or not self._keys.ltk:
            raise PairingFailed("the pairing has not completed")
        return self.band_id, self._keys.ltk


@dataclass(slots=True)
class Session:
    """One connection's sealed relay: AES-CCM per frame, counters per direction."""

    key: bytes
    sending: int  # TO_BAND (the phone's session) or TO_PHONE (the band's)
    sent: int = 0
    received: int = 0

    def seal(self, plaintext: bytes) -> bytes:
        self.sent += 1
        counter = self.sent.to_bytes(COUNTER_SIZE)
        header = bytes((DATA,)) + counter
        sealed = AESCCM(self.key, TAG_SIZE).encrypt(_nonce(self.sending, counter), plaintext,
                                                    header)
        return header + sealed

    def open(self, frame: bytes) -> bytes:
        if len(frame) < 1 + COUNTER_SIZE + TAG_SIZE or frame[0] != DATA:
            raise FrameRejected("not a relay frame")
        counter = frame[1:1 + COUNTER_SIZE]
        if int.from_bytes(counter) <= self.received:
            raise FrameRejected("a replayed or reordered frame")
        incoming = TO_PHONE if self.sending == TO_BAND else TO_BAND
        try:
            plaintext = AESCCM(self.key, TAG_SIZE).decrypt(_nonce(incoming, counter),
                                                           frame[1 + COUNTER_SIZE:],
                                                           frame[:1 + COUNTER_SIZE])
        except InvalidTag:
            raise FrameRejected("the frame was altered, or sealed under another key") from None
        self.received = int.from_bytes(counter)
        return plaintext


def _nonce(direction: int, counter: bytes) -> bytes:
    """A 13-byte CCM nonce: never the same twice under one session key."""
    return bytes((direction,)) + bytes(8) + counter


def session_key(ltk: bytes, phone_nonce: bytes, band_nonce: bytes) -> bytes:
    return aes_cmac(ltk, SESSION_LABEL + phone_nonce + band_nonce)


def phone_hello(phone_id: bytes, rng: Rng) -> tuple[bytes, bytes]:
    """(the hello message, its nonce) the companion opens each connection with."""
    nonce = rng(SESSION_NONCE_SIZE)
    return bytes((HELLO,)) + phone_id + nonce, nonce


def band_accept(hello: bytes, bonds: Mapping[bytes, bytes], rng: Rng) -> tuple[bytes, Session]:
    """The band's answer to a hello, and its session; FrameRejected for a phone it does not
    know (never paired, or revoked)."""
    if len(hello) != 1 + ID_SIZE + SESSION_NONCE_SIZE or hello[0] != HELLO:
        raise FrameRejected("not a hello")
    phone_id, phone_nonce = hello[1:1 + ID_SIZE], hello[1 + ID_SIZE:]
    ltk = bonds.get(phone_id)
    if ltk is None:
        raise FrameRejected("this phone is not paired with the band (or was revoked)")
    band_nonce = rng(SESSION_NONCE_SIZE)
    return bytes((HELLO_ACK,)) + band_nonce, Session(session_key(ltk, phone_nonce, band_nonce),
                                                     TO_PHONE)


def phone_session(ack: bytes, ltk: bytes, phone_nonce: bytes) -> Session:
    if len(ack) != 1 + SESSION_NONCE_SIZE or ack[0] != HELLO_ACK:
        raise FrameRejected("the band did not accept the session")
    return Session(session_key(ltk, phone_nonce, ack[1:]), TO_BAND)


def revoke(bonds: MutableMapping[bytes, bytes], phone_id: bytes) -> None:
    """Forget a phone: its next hello is refused."""
    bonds.pop(phone_id, None)
