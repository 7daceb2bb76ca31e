"""The relay's messages above GATT: what the phone asks of the band and what it answers.

Both ends speak them: the band's (:class:`wallet.ble.service.BandEnd`) takes
each value written to "relay in" and returns the values to notify on "relay
out"; the phone's (:class:`phone.ble.channel.PhoneEnd`) builds the values to
write and takes the notified ones. Every message is an app-layer message
(:mod:`ble.secure`): pairing messages
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

from collections.abc import Sequence

from ble import secure
from ble.errors import BleError

BATCH, RESET, UNLOCK, LOCK, EXPRESS = 0x01, 0x02, 0x03, 0x04, 0x05
ANSWERS, RESET_DONE, STATE, REFUSED = 0x81, 0x82, 0x83, 0x8F
PAIRING = frozenset({secure.PAIR_REQUEST, secure.PAIR_RANDOM_A, secure.PAIR_CHECK_A})


class RelayError(BleError):
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
