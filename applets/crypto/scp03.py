"""GlobalPlatform Secure Channel Protocol '03' (AES), card and host side alike.

GP Card Specification v2.3 Amendment D (SCP03) v1.1.1 / v1.2: the CMAC-based
key derivation (4.1.5), session keys (6.2.1), challenges and cryptograms
(6.2.2), C-MAC / R-MAC chaining (6.2.3-6.2.5), command and response
encryption (6.2.6, 6.2.7), key encryption under Key-DEK (6.2.8) and the AES
key check value (7.2.2). Section numbers are those of Amendment D.

Every function is pure: the caller keeps the MAC chaining value and the
encryption counter. AES and CMAC come from ``cryptography``; nothing here
implements a cipher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

BLOCK = 16
KEY_LENGTHS = (16, 24, 32)
ZERO_CHAINING = bytes(BLOCK)  # the MAC chaining value of EXTERNAL AUTHENTICATE (6.2.3)

# Derivation constants, Amendment D Table 4-1.
DERIVE_CARD_CRYPTOGRAM = 0x00
DERIVE_HOST_CRYPTOGRAM = 0x01
DERIVE_CARD_CHALLENGE = 0x02
DERIVE_S_ENC = 0x04
DERIVE_S_MAC = 0x06
DERIVE_S_RMAC = 0x07

# Key types of GlobalPlatformPro's "kdf3" diversification template ($k).
KDF3_ENC = 0x01
KDF3_MAC = 0x02
KDF3_DEK = 0x03

_CHALLENGE_LENGTHS = (8, 16)  # S8 and S16 mode
_MAC_LENGTHS = (8, 16)


def _check_key(key: bytes, name: str = "key") -> None:
    if len(key) not in KEY_LENGTHS:
        raise ValueError(f"an AES {name} has 16, 24 or 32 bytes, got {len(key)}")


def _check_chaining(chaining: bytes) -> None:
    if len(chaining) != BLOCK:
        raise ValueError(f"the MAC chaining value has 16 bytes, got {len(chaining)}")


def _check_mac_length(mac_length: int) -> None:
    if mac_length not in _MAC_LENGTHS:
        raise ValueError(f"a C-MAC / R-MAC has 8 (S8) or 16 (S16) bytes, got {mac_length}")


def _encrypt_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - block primitive
    return encryptor.update(block) + encryptor.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """The full 16-byte AES-CMAC of NIST SP 800-38B, SCP03's only MAC (4.1.3)."""
    _check_key(key)
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


# -- data derivation (4.1.5) -------------------------------------------------------------


#: AES-CMAC under a key that may live elsewhere (an HSM): data in, 16-byte MAC out.
Prf = Callable[[bytes], bytes]


def counter_kdf(key: bytes | Prf, prefix: bytes, suffix: bytes, length: int) -> bytes:
    """NIST SP 800-108 KDF in counter mode, PRF AES-CMAC, 8-bit counter between prefix and suffix.

    ``key`` is the AES key, or the CMAC itself when the key is kept in a key
    store. Block i is CMAC(key, prefix || i || suffix) for i = 1, 2, ...; the blocks are
    concatenated and cut to ``length`` bytes. SCP03 puts its label, separation
    indicator and L in the prefix and its context in the suffix (:func:`derive`);
    GlobalPlatformPro's "kdf3" uses an empty prefix (:func:`diversify_kdf3`).
    """
    if length < 1:
        raise ValueError(f"the derived length must be at least one byte, got {length}")
    blocks = -(-length // BLOCK)
    if blocks > 0xFF:
        raise ValueError(f"an 8-bit counter derives at most {0xFF * BLOCK} bytes, asked {length}")
    prf = partial(aes_cmac, key) if isinstance(key, bytes) else key
    output = b"".join(prf(prefix + bytes((i,)) + suffix) for i in range(1, blocks + 1))
    return output[:length]


def derive(key: bytes, constant: int, context: bytes, length_bits: int) -> bytes:
    """The SCP03 data derivation scheme (4.1.5) for keys, challenges and cryptograms.

    Per block: label (11 bytes '00' || constant), separation indicator '00',
    L (2 bytes, bits), counter i (1 byte, from 1), context; output cut to L bits.
    """
    if not 0 <= constant <= 0xFF:
        raise ValueError(f"a derivation constant is one byte, got {constant}")
    if length_bits < 8 or length_bits % 8 or length_bits > 0xFFFF:
        raise ValueError(f"L must be a whole number of bytes up to 0xFFFF bits, got {length_bits}")
    prefix = bytes(11) + bytes((constant, 0x00)) + length_bits.to_bytes(2, "big")
    return counter_kdf(key, prefix, context, length_bits // 8)


# -- session keys, challenges and cryptograms (6.2.1, 6.2.2) -----------------------------


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """S-ENC, S-MAC and S-RMAC of one secure channel session (6.2.1)."""

    s_enc: bytes
    s_mac: bytes
    s_rmac: bytes


def _context(host_challenge: bytes, card_challenge: bytes) -> bytes:
    """Host challenge || card challenge: 8 bytes each in S8 mode, 16 each in S16 mode."""
    if len(host_challenge) not in _CHALLENGE_LENGTHS or len(card_challenge) != len(host_challenge):
        raise ValueError("host and card challenges must both have 8 (S8) or both 16 (S16) bytes, "
                         f"got {len(host_challenge)} and {len(card_challenge)}")
    return host_challenge + card_challenge


def session_keys(enc: bytes, mac: bytes, host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
    """Session keys from the static Key-ENC and Key-MAC (6.2.1); each as long as its static key.

    S-RMAC comes from Key-MAC too, with its own constant.
    """
    _check_key(enc, "Key-ENC")
    _check_key(mac, "Key-MAC")
    context = _context(host_challenge, card_challenge)
    return SessionKeys(
        s_enc=derive(enc, DERIVE_S_ENC, context, len(enc) * 8),
        s_mac=derive(mac, DERIVE_S_MAC, context, len(mac) * 8),
        s_rmac=derive(mac, DERIVE_S_RMAC, context, len(mac) * 8),
    )


def card_cryptogram(s_mac: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The card's authentication cryptogram (6.2.2.2), as long as the challenges."""
    _check_key(s_mac, "S-MAC")
    context = _context(host_challenge, card_challenge)
    return derive(s_mac, DERIVE_CARD_CRYPTOGRAM, context, len(host_challenge) * 8)


def host_cryptogram(s_mac: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The host's authentication cryptogram (6.2.2.3), as long as the challenges."""
    _check_key(s_mac, "S-MAC")
    context = _context(host_challenge, card_challenge)
    return derive(s_mac, DERIVE_HOST_CRYPTOGRAM, context, len(host_challenge) * 8)


def pseudo_random_card_challenge(enc: bytes, sequence_counter: bytes, aid: bytes) -> bytes:
    """The 8-byte pseudo-random card challenge (6.2.2.1): Key-ENC, context counter || AID.

    ``sequence_counter`` is the 3-byte value the card has just incremented and
    returns at the end of its INITIALIZE UPDATE answer; ``aid`` is that of the
    security domain (5 to 16 bytes).
    """
    _check_key(enc, "Key-ENC")
    if len(sequence_counter) != 3:
        raise ValueError(f"the sequence counter has 3 bytes, got {len(sequence_counter)}")
    if not 5 <= len(aid) <= 16:
        raise ValueError(f"an AID has 5 to 16 bytes, got {len(aid)}")
    return derive(enc, DERIVE_CARD_CHALLENGE, sequence_counter + aid, 64)


# -- secure messaging: MACs (6.2.3 - 6.2.5) ----------------------------------------------


def c_mac(s_mac: bytes, chaining: bytes, data: bytes, *, mac_length: int = 8) -> tuple[bytes, bytes]:
    """The C-MAC of one command and the MAC chaining value for what follows (6.2.4).

    ``chaining`` is :data:`ZERO_CHAINING` for EXTERNAL AUTHENTICATE, then the
    value this function returned for the previous command. ``data`` is the
    command as transmitted, without the C-MAC and without Le: CLA with bit 3
    ('04', secure messaging) set and the logical channel bits cleared, INS,
    P1, P2, Lc counting the (padded, encrypted) data field *plus* the C-MAC,
    then that data field. Returns the leading ``mac_length`` bytes (8 in S8
    mode, 16 in S16) and the full 16-byte CMAC, the new chaining value.
    """
    _check_key(s_mac, "S-MAC")
    _check_chaining(chaining)
    _check_mac_length(mac_length)
    full = aes_cmac(s_mac, chaining + data)
    return full[:mac_length], full


def r_mac(s_rmac: bytes, chaining: bytes, response_data_and_sw: bytes, *, mac_length: int = 8) -> bytes:
    """The R-MAC of one response (6.2.5).

    ``chaining`` is the full C-MAC of the command being answered (the value
    :func:`c_mac` returned for it); ``response_data_and_sw`` is the response data
    field as transmitted (encrypted at R-ENCRYPTION level, possibly empty)
    followed by SW1 SW2. Error status words carry no R-MAC: the caller decides.
    """
    _check_key(s_rmac, "S-RMAC")
    _check_chaining(chaining)
    _check_mac_length(mac_length)
    return aes_cmac(s_rmac, chaining + response_data_and_sw)[:mac_length]


# -- secure messaging: encryption (4.1.4, 6.2.6, 6.2.7) ----------------------------------


def pad(data: bytes) -> bytes:
    """SCP03 padding (4.1.4): '80', then '00' up to a whole AES block (always adds)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def unpad(data: bytes) -> bytes:
    """Strip :func:`pad`; ValueError unless the last block ends in '80' and zeros."""
    if not data or len(data) % BLOCK:
        raise ValueError(f"padded data is a non-empty multiple of 16 bytes, got {len(data)}")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise ValueError("bad padding: the data does not end with '80' and zeros in its last block")
    return stripped[:-1]


def _icv(s_enc: bytes, counter: int, response: bool) -> bytes:
    """ICV = AES(S-ENC, counter block); for responses the block starts with '80' (6.2.6, 6.2.7)."""
    _check_key(s_enc, "S-ENC")
    width = BLOCK - 1 if response else BLOCK
    if not 1 <= counter < 1 << (8 * width):
        raise ValueError(f"the encryption counter starts at 1 and fits in {width} bytes, got {counter}")
    block = counter.to_bytes(width, "big")
    return _encrypt_block(s_enc, b"\x80" + block if response else block)


def _cbc_encrypt(s_enc: bytes, icv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(s_enc), modes.CBC(icv)).encryptor()
    return encryptor.update(pad(data)) + encryptor.finalize()


def _cbc_decrypt(s_enc: bytes, icv: bytes, data: bytes) -> bytes:
    if len(data) % BLOCK:
        raise ValueError(f"encrypted data is a multiple of 16 bytes, got {len(data)}")
    decryptor = Cipher(algorithms.AES(s_enc), modes.CBC(icv)).decryptor()
    return unpad(decryptor.update(data) + decryptor.finalize())


def encrypt_command(s_enc: bytes, counter: int, data: bytes) -> bytes:
    """C-DECRYPTION, host side (6.2.6): pad, AES-CBC under S-ENC, ICV from the counter.

    ``counter`` is the session's encryption counter, 1 for the first command
    after EXTERNAL AUTHENTICATE and incremented for every command, with or
    without data. An empty data field is sent as is.
    """
    icv = _icv(s_enc, counter, response=False)
    return _cbc_encrypt(s_enc, icv, data) if data else b""


def decrypt_command(s_enc: bytes, counter: int, data: bytes) -> bytes:
    """C-DECRYPTION, card side: the inverse of :func:`encrypt_command`; ValueError on bad padding."""
    icv = _icv(s_enc, counter, response=False)
    return _cbc_decrypt(s_enc, icv, data) if data else b""


def encrypt_response(s_enc: bytes, counter: int, data: bytes) -> bytes:
    """R-ENCRYPTION, card side (6.2.7): as commands but ICV from '80' || counter (15 bytes).

    ``counter`` is that of the command being answered. Empty data stays empty.
    """
    icv = _icv(s_enc, counter, response=True)
    return _cbc_encrypt(s_enc, icv, data) if data else b""


def decrypt_response(s_enc: bytes, counter: int, data: bytes) -> bytes:
    """R-ENCRYPTION, host side: the inverse of :func:`encrypt_response`; ValueError on bad padding."""
    icv = _icv(s_enc, counter, response=True)
    return _cbc_decrypt(s_enc, icv, data) if data else b""


# -- static keys: key encryption, check values, diversification (6.2.8, 7.2) ------------


def encrypt_key(dek: bytes, key: bytes) -> bytes:
    """An AES key encrypted under the static Key-DEK (6.2.8): AES-CBC, zero ICV.

    A 24-byte key is padded with 8 bytes that the spec leaves arbitrary; zeros
    here. PUT KEY sends the clear length byte in front (7.2.1, Table 7-10).
    """
    _check_key(dek, "Key-DEK")
    _check_key(key)
    encryptor = Cipher(algorithms.AES(dek), modes.CBC(bytes(BLOCK))).encryptor()
    return encryptor.update(key + bytes(-len(key) % BLOCK)) + encryptor.finalize()


def decrypt_key(dek: bytes, encrypted: bytes, length: int | None = None) -> bytes:
    """The inverse of :func:`encrypt_key`; ``length`` (from PUT KEY) drops a 24-byte key's padding."""
    _check_key(dek, "Key-DEK")
    if not encrypted or len(encrypted) % BLOCK:
        raise ValueError(f"an encrypted key is a non-empty multiple of 16 bytes, got {len(encrypted)}")
    decryptor = Cipher(algorithms.AES(dek), modes.CBC(bytes(BLOCK))).decryptor()
    plain = decryptor.update(encrypted) + decryptor.finalize()
    if length is None:
        return plain
    if not 0 < length <= len(plain):
        raise ValueError(f"a key of {length} bytes does not fit {len(plain)} decrypted bytes")
    return plain[:length]


def kcv(key: bytes) -> bytes:
    """AES key check value (7.2.2): the first 3 bytes of AES(key, 16 bytes '01')."""
    _check_key(key)
    return _encrypt_block(key, b"\x01" * BLOCK)[:3]


def diversify_kdf3(master: bytes | Prf, div_data: bytes, constant: int, length: int = 16) -> bytes:
    """A card key from a master key, GlobalPlatformPro's "kdf3" template; as long as the master.

    A master held in a key store is passed as its CMAC, with the key's ``length``.

    Not part of GlobalPlatform: GlobalPlatformPro (PlaintextKeys.kdf_templates)
    defines "kdf3" as "$_ 00 00 00 $k 00 $0..$9" fed to its SCP03 counter-mode
    KDF, i.e. PRF input i || 00 00 00 || key type || 00 || KDD, with no label,
    separation indicator or L. ``div_data`` is the 10-byte key diversification
    data of INITIALIZE UPDATE; ``constant`` the key type: :data:`KDF3_ENC` (1),
    :data:`KDF3_MAC` (2) or :data:`KDF3_DEK` (3).
    """
    if isinstance(master, bytes):
        _check_key(master, "master key")
        length = len(master)
    if len(div_data) != 10:
        raise ValueError(f"the key diversification data has 10 bytes, got {len(div_data)}")
    if not 0 <= constant <= 0xFF:
        raise ValueError(f"the kdf3 key type is one byte, got {constant}")
    return counter_kdf(master, b"", bytes((0, 0, 0, constant, 0)) + div_data, length)
