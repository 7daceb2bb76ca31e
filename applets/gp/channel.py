"""Secure channels on the card side: SCP03 (AES) and SCP02 (3DES), one interface.

A channel opens with INITIALIZE UPDATE (card challenge and cryptogram) and
EXTERNAL AUTHENTICATE (host cryptogram, first C-MAC, security level). From
then on every command carries a C-MAC chained to the previous one and, at
C-DECRYPTION level, an encrypted data field; answers carry an R-MAC and are
encrypted when the host asked for it. Any failure closes the channel: the
host must authenticate again. Nothing here keeps state across power loss.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from enum import IntFlag

from applets.apdu import CommandAPDU
from applets.crypto import scp02, scp03
from applets.errors import CardError
from applets.gp.keys import KeySet
from applets.sw import SW

SM_BIT = 0x04
MAC_SIZE = 8
BLOCK = 16  # AES
SCP03_I = 0x70  # pseudo-random card challenge, R-MAC and R-ENCRYPTION supported
SCP02_I = 0x55  # 3 keys, C-MAC on the modified APDU, explicit initiation, ICV encryption
SCP02_I_VALUES = (0x15, 0x55)  # i=15 is the same without ICV encryption
ICV_ENCRYPTION = 0x40


class Level(IntFlag):
    """Security level of EXTERNAL AUTHENTICATE P1 (GP 2.3 Table 10-?; Amd D 7.1.2)."""

    NONE = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20


ALLOWED_LEVELS = {0x01, 0x03, 0x11, 0x13, 0x33}


class SecureChannel(ABC):
    """One session between a host and a security domain."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self.level = Level.NONE
        self.authenticated = False

    @abstractmethod
    def initialize_update(self, host_challenge: bytes, div_data: bytes) -> bytes:
        """The INITIALIZE UPDATE answer: diversification data, key info, challenge, cryptogram."""

    @abstractmethod
    def external_authenticate(self, apdu: CommandAPDU) -> None:
        """Check the host cryptogram and the first C-MAC; raise 6300 / 6982 if wrong."""

    @abstractmethod
    def unwrap(self, apdu: CommandAPDU) -> CommandAPDU:
        """Check the C-MAC, decrypt the data: the command as the host meant it."""

    @abstractmethod
    def wrap(self, data: bytes, sw: int) -> bytes:
        """The response data the host receives (R-ENCRYPTION, then R-MAC appended)."""

    @abstractmethod
    def decrypt_key(self, encrypted: bytes) -> bytes:
        """A key sent under the DEK (PUT KEY, key DGIs)."""

    def room(self, ne: int) -> int:
        """How many bytes of response data still fit ``ne`` once :meth:`wrap` has added
        its padding and R-MAC."""
        return ne

    def _check_level(self, p1: int) -> Level:
        if p1 not in ALLOWED_LEVELS:
            raise CardError(SW.INCORRECT_P1_P2, f"security level {p1:02X} is not supported")
        return Level(p1)


def _split_mac(apdu: CommandAPDU) -> tuple[bytes, bytes]:
    if not apdu.cla & SM_BIT or len(apdu.data) < MAC_SIZE:
        raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "a C-MAC is required")
    return apdu.data[:-MAC_SIZE], apdu.data[-MAC_SIZE:]


def _header(apdu: CommandAPDU, lc: int) -> bytes:
    return bytes((apdu.cla | SM_BIT, apdu.ins, apdu.p1, apdu.p2, lc))


class Scp03Channel(SecureChannel):
    """GP Card Specification 2.3 Amendment D (SCP03), S8 mode, pseudo-random challenge."""

    def __init__(self, keys: KeySet, aid: bytes, sequence_counter: int) -> None:
        super().__init__(keys)
        self._aid = aid
        self._counter = sequence_counter
        self._session: scp03.SessionKeys | None = None
        self._host_challenge = self._card_challenge = b""
        self._chaining = bytes(16)
        self._enc_counter = 0

    def initialize_update(self, host_challenge: bytes, div_data: bytes) -> bytes:
        if len(host_challenge) != 8:
            raise CardError(SW.WRONG_LENGTH, "the host challenge has 8 bytes")
        counter = self._counter.to_bytes(3)
        card_challenge = scp03.pseudo_random_card_challenge(self.keys.enc, counter, self._aid)
        self._session = scp03.session_keys(self.keys.enc, self.keys.mac, host_challenge,
                                           card_challenge)
        self._host_challenge, self._card_challenge = host_challenge, card_challenge
        cryptogram = scp03.card_cryptogram(self._session.s_mac, host_challenge, card_challenge)
        key_info = bytes((self.keys.version, 0x03, SCP03_I))
        return div_data + key_info + card_challenge + cryptogram + counter

    def external_authenticate(self, apdu: CommandAPDU) -> None:
        if self._session is None or self.authenticated:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE UPDATE before")
        level = self._check_level(apdu.p1)
        body, mac = _split_mac(apdu)
        expected = scp03.host_cryptogram(self._session.s_mac, self._host_challenge,
                                         self._card_challenge)
        if len(body) != 8 or not hmac.compare_digest(body, expected):
            raise CardError(SW.VERIFY_FAILED, "wrong host cryptogram")
        self._verify_mac(apdu, body, mac)
        self.level, self.authenticated = level, True

    def _verify_mac(self, apdu: CommandAPDU, body: bytes, mac: bytes) -> None:
        if self._session is None:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "no secure channel")
        expected, chaining = scp03.c_mac(self._session.s_mac, self._chaining,
                                         _header(apdu, len(apdu.data)) + body)
        if not hmac.compare_digest(expected, mac):
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "wrong C-MAC")
        self._chaining = chaining

    def unwrap(self, apdu: CommandAPDU) -> CommandAPDU:
        if self._session is None:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "no secure channel")
        body, mac = _split_mac(apdu)
        self._verify_mac(apdu, body, mac)
        self._enc_counter += 1
        if self.level & Level.C_DECRYPTION and body:
            try:
                body = scp03.decrypt_command(self._session.s_enc, self._enc_counter, body)
            except ValueError as error:
                raise CardError(SW.SM_DATA_INCORRECT, str(error)) from error
        return CommandAPDU(apdu.cla & ~SM_BIT, apdu.ins, apdu.p1, apdu.p2, body, apdu.ne)

    def wrap(self, data: bytes, sw: int) -> bytes:
        if self._session is None or not self.level & Level.R_MAC:
            return data
        if self.level & Level.R_ENCRYPTION and data:
            data = scp03.encrypt_response(self._session.s_enc, self._enc_counter, data)
        return data + scp03.r_mac(self._session.s_rmac, self._chaining, data + sw.to_bytes(2))

    def decrypt_key(self, encrypted: bytes) -> bytes:
        return scp03.decrypt_key(self.keys.dek, encrypted)

    def room(self, ne: int) -> int:
        if self._session is None or not self.level & Level.R_MAC:
            return ne
        room = ne - MAC_SIZE
        if self.level & Level.R_ENCRYPTION:
            room = room // BLOCK * BLOCK - 1  # ISO/IEC 9797-1 padding adds 1 to 16 bytes
        return max(room, 0)


class Scp02Channel(SecureChannel):
    """GP Card Specification 2.3 Appendix E (SCP02), i=15 or i=55 (with ICV encryption)."""

    def __init__(self, keys: KeySet, sequence_counter: int, card_challenge: bytes,
                 i: int = SCP02_I) -> None:
        super().__init__(keys)
        if i not in SCP02_I_VALUES:
            raise ValueError(f"SCP02 i={i:02X} is not offered; the band does 15 and 55")
        self._icv_encryption = bool(i & ICV_ENCRYPTION)
        self._counter = sequence_counter.to_bytes(2)
        self._card_challenge = card_challenge
        self._s_enc = scp02.session_key(keys.enc, scp02.S_ENC, self._counter)
        self._s_mac = scp02.session_key(keys.mac, scp02.C_MAC, self._counter)
        self._s_rmac = scp02.session_key(keys.mac, scp02.R_MAC, self._counter)
        self._s_dek = scp02.session_key(keys.dek, scp02.DEK, self._counter)
        self._host_challenge = b""
        self._icv = bytes(8)
        self._last_mac: bytes | None = None

    def initialize_update(self, host_challenge: bytes, div_data: bytes) -> bytes:
        if len(host_challenge) != 8:
            raise CardError(SW.WRONG_LENGTH, "the host challenge has 8 bytes")
        self._host_challenge = host_challenge
        cryptogram = scp02.card_cryptogram(self._s_enc, host_challenge, self._counter,
                                           self._card_challenge)
        return (div_data + bytes((self.keys.version, 0x02)) + self._counter
                + self._card_challenge + cryptogram)

    def external_authenticate(self, apdu: CommandAPDU) -> None:
        if not self._host_challenge or self.authenticated:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE UPDATE before")
        level = self._check_level(apdu.p1)
        if level & (Level.R_MAC | Level.R_ENCRYPTION):
            raise CardError(SW.INCORRECT_P1_P2, "this band's SCP02 protects commands only "
                                                "(no R-MAC session, no response encryption)")
        body, mac = _split_mac(apdu)
        expected = scp02.host_cryptogram(self._s_enc, self._counter, self._card_challenge,
                                         self._host_challenge)
        if len(body) != 8 or not hmac.compare_digest(body, expected):
            raise CardError(SW.VERIFY_FAILED, "wrong host cryptogram")
        self._verify_mac(apdu, body, mac)
        self.level, self.authenticated = level, True

    def _verify_mac(self, apdu: CommandAPDU, plain: bytes, mac: bytes) -> None:
        icv = self._icv if self._last_mac is None else scp02.next_icv(
            self._s_mac, self._last_mac, icv_encryption=self._icv_encryption)
        expected = scp02.c_mac(self._s_mac, icv, _header(apdu, len(plain) + MAC_SIZE) + plain)
        if not hmac.compare_digest(expected, mac):
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "wrong C-MAC")
        self._last_mac = expected

    def unwrap(self, apdu: CommandAPDU) -> CommandAPDU:
        body, mac = _split_mac(apdu)
        if self.level & Level.C_DECRYPTION and body:
            try:
                body = scp02.decrypt_command_data(self._s_enc, body)
            except ValueError as error:
                raise CardError(SW.SM_DATA_INCORRECT, str(error)) from error
        self._verify_mac(apdu, body, mac)
        return CommandAPDU(apdu.cla & ~SM_BIT, apdu.ins, apdu.p1, apdu.p2, body, apdu.ne)

    def wrap(self, data: bytes, sw: int) -> bytes:
        return data  # R-MAC in SCP02 needs BEGIN R-MAC SESSION; not offered

    def decrypt_key(self, encrypted: bytes) -> bytes:
        return scp02.decrypt_key(self._s_dek, encrypted)
