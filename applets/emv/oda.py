"""EMV offline data authentication: the RSA certificates and the card's signed dynamic data.

One implementation serves all three parties: the issuer makes the Issuer and
ICC Public Key Certificates (EMV 4.x Book 2, sections 5 and 6), the card signs
its dynamic data (6.5, format '05') and the POS terminal recovers both keys
and checks the signature. The terminal's dynamic data are those of qPBOC /
qVSDC fDDA version '01' (:func:`fdda_terminal_data`), so the signature rides
in the card's GET PROCESSING OPTIONS answer: no INTERNAL AUTHENTICATE.

EMV certificates and signed data are ISO/IEC 9796-2 signatures with message
recovery (header '6A', trailer 'BC', SHA-1), made with the raw RSA operation,
which ``cryptography`` does not offer: it pads every RSA operation. So keys are
generated and held as ``cryptography`` RSA keys and hashed with its SHA-1,
and only the raw operation is Python's ``pow()`` on the key's numbers,
:func:`_public_raw` and :func:`_private_raw` (the latter with CRT, and checked
with the public exponent before it is released, as a CRT fault would give
the key away). ``pow()`` is not constant-time: fine for a simulated card,
not for a real one.

Failures are :class:`OdaError` whose message names the failed check. Bad
arguments from the caller's own side (a key or field of the wrong size when
signing, a terminal value of the wrong length) are ``ValueError``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

HEADER, TRAILER, PAD = 0x6A, 0xBC, 0xBB
FORMAT_ISSUER, FORMAT_ICC, FORMAT_SDAD = 0x02, 0x04, 0x05
SHA1, RSA = 0x01, 0x01  # hash and public key algorithm indicators
HASH_SIZE = 20
MAX_MODULUS = 248  # bytes: 1984 bits, EMV's largest key
EXPONENTS = (3, 65537)
FDDA_VERSION = 0x01

# Bytes of a recovered message outside the key or data it carries (Book 2 tables 13, 14, 17).
_ISSUER_OVERHEAD = 36  # 6A 02, id 4, expiry 2, serial 3, 4 indicators, hash 20, BC
_ICC_OVERHEAD = 42  # the same with a 10-byte PAN instead of the 4-byte issuer id
_SDAD_OVERHEAD = 25  # 6A 05, hash indicator, Ldd, hash 20, BC


class OdaError(Exception):
    """Offline data authentication failed; the message says which check."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An RSA public key as EMV carries it: big-endian modulus and exponent bytes."""

    modulus: bytes
    exponent: bytes

    @classmethod
    def of(cls, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> PublicKey:
        """The EMV form of a ``cryptography`` key; ValueError for a key EMV cannot certify."""
        numbers = key.public_key().public_numbers() if isinstance(key, rsa.RSAPrivateKey) \
            else key.public_numbers()
        if numbers.n.bit_length() % 8 or numbers.n.bit_length() > MAX_MODULUS * 8:
            raise ValueError("an EMV key has a whole number of bytes, at most 248")
        if numbers.e not in EXPONENTS:
            raise ValueError("an EMV key's exponent is 3 or 65537")
        return cls(_to_bytes(numbers.n, numbers.n.bit_length() // 8),
                   _to_bytes(numbers.e, 1 if numbers.e == 3 else 3))


@dataclass(frozen=True, slots=True)
class Certificate:
    """A public key certificate as the card's records carry it."""

    certificate: bytes  # tag 90 / 9F46
    remainder: bytes  # tag 92 / 9F48 (may be empty)
    exponent: bytes  # tag 9F32 / 9F47


def _to_bytes(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def _sha1(*parts: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - EMV's hash algorithm '01'
    for part in parts:
        digest.update(part)
    return digest.finalize()


def _public_raw(key: PublicKey, data: bytes) -> bytes:
    """Raw RSA with the public key: data^e mod n, as many bytes as the modulus."""
    n, e = int.from_bytes(key.modulus, "big"), int.from_bytes(key.exponent, "big")
    x = int.from_bytes(data, "big")
    if len(data) != len(key.modulus) or x >= n:
        raise OdaError("length: the signed data does not fit the key's modulus")
    return _to_bytes(pow(x, e, n), len(key.modulus))


def _private_raw(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """Raw RSA with the private key by CRT, refused unless the public exponent undoes it."""
    numbers = key.private_numbers()
    public = numbers.public_numbers
    x = int.from_bytes(data, "big")
    if x >= public.n:
        raise ValueError("the message to sign is not below the modulus")
    p, q = numbers.p, numbers.q
    m1 = pow(x % p, numbers.dmp1, p)
    m2 = pow(x % q, numbers.dmq1, q)
    s = m2 + q * (numbers.iqmp * (m1 - m2) % p)
    if pow(s, public.e, public.n) != x:
        raise RuntimeError("the RSA-CRT result failed its check")
    return _to_bytes(s, (public.n.bit_length() + 7) // 8)


def _sign(key: rsa.RSAPrivateKey, body: bytes, *hashed_after: bytes) -> bytes:
    """6A || body || SHA-1(body || hashed_after) || BC, through the private key."""
    return _private_raw(key, bytes((HEADER,)) + body + _sha1(body, *hashed_after)
                        + bytes((TRAILER,)))


def _recover(key: PublicKey, signed: bytes, fmt: int, what: str) -> bytes:
    """Book 2's first four checks of every recovery; the recovered message."""
    if len(signed) != len(key.modulus):
        raise OdaError(f"length: the {what} has {len(signed)} bytes, the key {len(key.modulus)}")
    message = _public_raw(key, signed)
    if message[-1] != TRAILER:
        raise OdaError(f"trailer: the {what} does not end in BC")
    if message[0] != HEADER:
        raise OdaError(f"header: the {what} does not start with 6A")
    if message[1] != fmt:
        raise OdaError(f"format: the {what} has format {message[1]:02X}, not {fmt:02X}")
    return message


def _check_hash(message: bytes, indicator: int, *hashed_after: bytes, what: str) -> None:
    if indicator != SHA1:
        raise OdaError(f"hash algorithm: the {what} names {indicator:02X}, only 01 (SHA-1) is known")
    if _sha1(message[1:-HASH_SIZE - 1], *hashed_after) != message[-HASH_SIZE - 1:-1]:
        raise OdaError(f"hash: the {what}'s hash does not match its data")


def _not_expired(expiry: bytes, today: date, what: str) -> None:
    """The certificate is valid up to the last day of its MMYY month (Book 2 6.3 step 9)."""
    digits = expiry.hex()
    if not digits.isdigit() or not 1 <= int(digits[:2]) <= 12:
        raise OdaError(f"expired: the {what}'s expiry date {digits.upper()} is not MMYY")
    month, yy = int(digits[:2]), int(digits[2:])
    year = 2000 + yy if yy < 50 else 1900 + yy
    if date(year, month, calendar.monthrange(year, month)[1]) < today:
        raise OdaError(f"expired: the {what} expired at the end of {month:02d}/{year}")


def _key_parts(message: bytes, at: int, signer: PublicKey, certificate: Certificate,
               overhead: int, what: str) -> PublicKey:
    """The certified key from its length bytes, the digits in the message and the remainder."""
    if message[at + 1] != RSA:
        raise OdaError(f"public key algorithm: the {what} names {message[at + 1]:02X}, not 01 (RSA)")
    length, exponent_length = message[at + 2], message[at + 3]
    room = len(signer.modulus) - overhead
    if length > len(signer.modulus):
        raise OdaError(f"key length: the {what} certifies {length} bytes, more than its signer's")
    if exponent_length != len(certificate.exponent) or exponent_length not in (1, 3):
        raise OdaError(f"exponent: the {what} says {exponent_length} bytes, the card gave "
                       f"{len(certificate.exponent)}")
    digits = message[at + 4:at + 4 + room]
    modulus = digits[:length] + certificate.remainder
    if len(modulus) != length:
        raise OdaError(f"remainder: the {what} needs {max(0, length - room)} remainder bytes, "
                       f"the card gave {len(certificate.remainder)}")
    return PublicKey(modulus, certificate.exponent)


def _certify(signer: rsa.RSAPrivateKey, fmt: int, holder: bytes, expiry: bytes, serial: bytes,
             key: PublicKey, overhead: int, *hashed_after: bytes) -> Certificate:
    """Book 2 tables 13 and 14: the certificate and the key's remainder."""
    size = (signer.key_size + 7) // 8
    if len(expiry) != 2 or len(serial) != 3:
        raise ValueError("the expiry is MMYY in 2 bytes, the serial number 3 bytes")
    if len(key.modulus) > size or len(key.exponent) not in (1, 3):
        raise ValueError("the certified key is longer than its signer's, or its exponent odd")
    room = size - overhead
    leftmost = key.modulus[:room].ljust(room, bytes((PAD,)))
    body = (bytes((fmt,)) + holder + expiry + serial
            + bytes((SHA1, RSA, len(key.modulus), len(key.exponent))) + leftmost)
    remainder = key.modulus[room:]
    return Certificate(_sign(signer, body, remainder, key.exponent, *hashed_after), remainder,
                       key.exponent)


def issuer_certificate(ca_key: rsa.RSAPrivateKey, issuer: PublicKey, issuer_id: bytes,
                       expiry: bytes, serial: bytes) -> Certificate:
    """The CA's certificate of an issuer key (format '02').

    issuer_id: the leftmost 3-8 PAN digits padded with F (4 bytes); expiry MMYY
    (2 bytes BCD); serial 3 bytes.
    """
    if len(issuer_id) != 4:
        raise ValueError("the issuer identifier has 4 bytes")
    return _certify(ca_key, FORMAT_ISSUER, issuer_id, expiry, serial, issuer, _ISSUER_OVERHEAD)


def icc_certificate(issuer_key: rsa.RSAPrivateKey, icc: PublicKey, pan: bytes, expiry: bytes,
                    serial: bytes, static_data: bytes) -> Certificate:
    """The issuer's certificate of a card's key (format '04'), which also signs its static data.

    pan: application PAN padded with F to 10 bytes; static_data: the static
    data to be authenticated (records named by the AFL, then AIP) that the
    certificate's hash covers.
    """
    if len(pan) != 10:
        raise ValueError("the PAN is padded with F to 10 bytes")
    return _certify(issuer_key, FORMAT_ICC, pan, expiry, serial, icc, _ICC_OVERHEAD, static_data)


def _pan_digits(pan: str) -> str:
    if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
        raise OdaError(f"PAN: {pan!r} is not 12 to 19 digits")
    return pan


def recover_issuer_key(ca: PublicKey, certificate: Certificate, pan: str, today: date) -> PublicKey:
    """The issuer's key from its certificate, after every check of Book 2 6.3.

    Length, trailer, header, format, hash algorithm and hash, the issuer
    identifier against the PAN, the expiry, the key algorithm; OdaError
    naming the failed check. (Step 10, the CA's revocation list, has no list
    to consult here.)
    """
    message = _recover(ca, certificate.certificate, FORMAT_ISSUER, "issuer certificate")
    _check_hash(message, message[11], certificate.remainder, certificate.exponent,
                what="issuer certificate")
    identifier = message[2:6].hex().upper()
    digits = identifier.rstrip("F")
    if not (len(digits) >= 3 and digits.isdigit() and _pan_digits(pan).startswith(digits)):
        raise OdaError(f"issuer identifier: {identifier} does not match the PAN")
    _not_expired(message[6:8], today, "issuer certificate")
    return _key_parts(message, 11, ca, certificate, _ISSUER_OVERHEAD, "issuer certificate")


def recover_icc_key(issuer: PublicKey, certificate: Certificate, pan: str, static_data: bytes,
                    today: date) -> PublicKey:
    """The card's key from its certificate, after every check of Book 2 6.4.

    The hash covers the static data, so a changed record or AIP fails it;
    the certified PAN must be the card's own.
    """
    message = _recover(issuer, certificate.certificate, FORMAT_ICC, "ICC certificate")
    _check_hash(message, message[17], certificate.remainder, certificate.exponent, static_data,
                what="ICC certificate")
    if message[2:12].hex().upper() != _pan_digits(pan).ljust(20, "F"):
        raise OdaError(f"PAN: the ICC certificate is for {message[2:12].hex().upper().rstrip('F')}")
    _not_expired(message[12:14], today, "ICC certificate")
    return _key_parts(message, 17, issuer, certificate, _ICC_OVERHEAD, "ICC certificate")


def sign_dynamic_data(icc_key: rsa.RSAPrivateKey, icc_dynamic_data: bytes,
                      terminal_data: bytes) -> bytes:
    """The Signed Dynamic Application Data (tag 9F4B, format '05').

    icc_dynamic_data: what the card vouches for, starting with the
    length-prefixed ICC dynamic number (for fDDA the ATC); terminal_data: the
    terminal's data the hash covers (fDDA: :func:`fdda_terminal_data`).
    """
    room = (icc_key.key_size + 7) // 8 - _SDAD_OVERHEAD
    if len(icc_dynamic_data) > room:
        raise ValueError(f"the ICC dynamic data has {len(icc_dynamic_data)} bytes, room for {room}")
    body = (bytes((FORMAT_SDAD, SHA1, len(icc_dynamic_data))) + icc_dynamic_data
            + bytes((PAD,)) * (room - len(icc_dynamic_data)))
    return _sign(icc_key, body, terminal_data)


def verify_dynamic_data(icc: PublicKey, sdad: bytes, terminal_data: bytes) -> bytes:
    """The ICC dynamic data the SDAD carries, after every check of Book 2 6.5.2."""
    message = _recover(icc, sdad, FORMAT_SDAD, "signed dynamic data")
    length = message[3]
    if length > len(message) - _SDAD_OVERHEAD:
        raise OdaError(f"length: the ICC dynamic data claims {length} bytes, more than fit")
    _check_hash(message, message[2], terminal_data, what="signed dynamic data")
    return message[4:4 + length]


def fdda_terminal_data(unpredictable_number: bytes, amount: bytes, currency: bytes,
                       card_authentication_data: bytes) -> bytes:
    """The terminal dynamic data fDDA version '01' hashes: 9F37 || 9F02 || 5F2A || 9F69.

    Version '00' hashed the unpredictable number alone, so a signature could
    be replayed for another amount; '01' binds amount and currency, and the
    card's own unpredictable number and qualifiers (Card Authentication
    Related Data, 5-16 bytes, version byte first). Data the card sent that
    name another version are an OdaError; terminal fields of the wrong size
    a ValueError.
    """
    if len(unpredictable_number) != 4 or len(amount) != 6 or len(currency) != 2:
        raise ValueError("9F37 has 4 bytes, 9F02 6 and 5F2A 2")
    if not 5 <= len(card_authentication_data) <= 16:
        raise OdaError("fDDA version: the Card Authentication Related Data has 5 to 16 bytes")
    if card_authentication_data[0] != FDDA_VERSION:
        raise OdaError(f"fDDA version: the card asks for {card_authentication_data[0]:02X}, "
                       f"only {FDDA_VERSION:02X} is supported")
    return unpredictable_number + amount + currency + card_authentication_data
