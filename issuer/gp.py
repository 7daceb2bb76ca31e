"""Host side of GlobalPlatform: a secure channel to any domain, and the commands a TSM sends.

The same flows drive a band in process, through PC/SC, over NFC or through
the phone's relay: :func:`open_channel` yields INITIALIZE UPDATE and
EXTERNAL AUTHENTICATE and returns a :class:`HostChannel` that wraps every
later command (C-MAC, C-DECRYPTION) and checks every answer (R-MAC,
R-ENCRYPTION). The cryptography is the card's own (``applets.crypto``).

An answer the card sends in parts (61xx) is gathered with GET RESPONSE
before its R-MAC is checked (:func:`complete`); a registry listing longer
than one answer is followed through GET STATUS's 6310 paging (:func:`status`).
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from applets import tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.crypto import gpkeys, scp02, scp03
from applets.gp import dgi as dgi_codec
from applets.gp import status as gp_status
from applets.gp.channel import ICV_ENCRYPTION, MAC_SIZE, SCP02_I, SM_BIT, Level
from applets.gp.keys import KeySet
from applets.iso7816 import CLA_PROPRIETARY, Ins, external_authenticate, get_response
from applets.sw import SW, is_warning
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import Flow, expect

Rng = Callable[[int], bytes]
#: A band's key set from its key diversification data (INITIALIZE UPDATE, 10 bytes).
Diversifier = Callable[[bytes], KeySet]
_SECURED = CLA_PROPRIETARY | SM_BIT  # 84: a command under the secure channel
SCHEMES = ("emv", "visa2", "kdf3")


def diversified(master: KeySet, scheme: str) -> Diversifier:
    """Per-band keys from master keys, as GlobalPlatformPro's EMV, VISA2 and KDF3 options do.

    ENC, MAC and DEK each come from the master key of the same role (one
    master for all three is the usual set-up: pass it three times).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown diversification {scheme!r}; known: {', '.join(SCHEMES)}")

    def derive(div_data: bytes) -> KeySet:
        if scheme == "kdf3":
            keys = [scp03.diversify_kdf3(m, div_data, c) for m, c in
                    ((master.enc, scp03.KDF3_ENC), (master.mac, scp03.KDF3_MAC),
                     (master.dek, scp03.KDF3_DEK))]
        else:
            scheme_keys = gpkeys.diversify_emv if scheme == "emv" else gpkeys.diversify_visa2
            keys = [scheme_keys(m, div_data)[role]
                    for role, m in enumerate((master.enc, master.mac, master.dek))]
        return KeySet(master.version, master.scp, keys[0], keys[1], keys[2])

    return derive


class AuthenticationFailed(TransactionRefused):
    """The card's cryptogram is wrong: these are not the domain's keys (or not a genuine card)."""


class HostChannel(ABC):
    """An open secure channel, host side."""

    def __init__(self, keys: KeySet, level: Level) -> None:
        self.keys = keys
        self.level = level
        self.div_data = b""  # the band's key diversification data (INITIALIZE UPDATE)

    @abstractmethod
    def wrap(self, command: CommandAPDU) -> CommandAPDU:
        """C-MAC (and C-DECRYPTION) for ``command``."""

    @abstractmethod
    def unwrap(self, response: ResponseAPDU) -> ResponseAPDU:
        """Check the R-MAC and decrypt, or return the answer as it came."""

    @abstractmethod
    def encrypt_key(self, key: bytes) -> bytes:
        """A key under the channel's DEK, for PUT KEY and key DGIs."""

    def kcv(self, key: bytes) -> bytes:
        return scp03.kcv(key) if self.keys.scp == 3 else scp02.kcv(key)

    def transmit(self, command: CommandAPDU) -> Flow[ResponseAPDU]:
        """Send ``command`` under the channel; its whole answer (61xx parts gathered),
        checked and decrypted."""
        response = yield from complete(self.wrap(command))
        return self.unwrap(response)

    def send(self, command: CommandAPDU, step: str) -> Flow[bytes]:
        """Send ``command`` under the channel; the answer's data, or CardProtocolError."""
        return expect((yield from self.transmit(command)), step)


class Scp03Host(HostChannel):
    def __init__(self, keys: KeySet, level: Level, session: scp03.SessionKeys,
                 chaining: bytes) -> None:
        super().__init__(keys, level)
        self._session = session
        self._chaining = chaining
        self._counter = 0

    def wrap(self, command: CommandAPDU) -> CommandAPDU:
        self._counter += 1
        data = command.data
        if self.level & Level.C_DECRYPTION and data:
            data = scp03.encrypt_command(self._session.s_enc, self._counter, data)
        cla = command.cla | SM_BIT
        header = bytes((cla, command.ins, command.p1, command.p2, len(data) + MAC_SIZE))
        mac, self._chaining = scp03.c_mac(self._session.s_mac, self._chaining, header + data)
        return CommandAPDU(cla, command.ins, command.p1, command.p2, data + mac, command.ne)

    def unwrap(self, response: ResponseAPDU) -> ResponseAPDU:
        # An error answer carries no R-MAC; 9000 and the warnings (62xx, 63xx) do.
        if not self.level & Level.R_MAC or not (response.sw == SW.OK or is_warning(response.sw)):
            return response
        data, mac = response.data[:-MAC_SIZE], response.data[-MAC_SIZE:]
        expected = scp03.r_mac(self._session.s_rmac, self._chaining, data + response.sw.to_bytes(2))
        if len(response.data) < MAC_SIZE or not hmac.compare_digest(expected, mac):
            raise CardProtocolError("R-MAC", response.sw, "the answer's R-MAC is wrong")
        if self.level & Level.R_ENCRYPTION and data:
            data = scp03.decrypt_response(self._session.s_enc, self._counter, data)
        return ResponseAPDU(data, response.sw)

    def encrypt_key(self, key: bytes) -> bytes:
        return scp03.encrypt_key(self.keys.dek, key)


class Scp02Host(HostChannel):
    def __init__(self, keys: KeySet, level: Level, counter: bytes, first_mac: bytes,
                 i: int) -> None:
        super().__init__(keys, level)
        self._icv_encryption = bool(i & ICV_ENCRYPTION)
        self._s_enc = scp02.session_key(keys.enc, scp02.S_ENC, counter)
        self._s_mac = scp02.session_key(keys.mac, scp02.C_MAC, counter)
        self._s_dek = scp02.session_key(keys.dek, scp02.DEK, counter)
        self._last_mac = first_mac

    def wrap(self, command: CommandAPDU) -> CommandAPDU:
        cla = command.cla | SM_BIT
        header = bytes((cla, command.ins, command.p1, command.p2, len(command.data) + MAC_SIZE))
        icv = scp02.next_icv(self._s_mac, self._last_mac, icv_encryption=self._icv_encryption)
        mac = scp02.c_mac(self._s_mac, icv, header + command.data)
        self._last_mac = mac
        data = command.data
        if self.level & Level.C_DECRYPTION and data:
            data = scp02.encrypt_command_data(self._s_enc, data)
        return CommandAPDU(cla, command.ins, command.p1, command.p2, data + mac, command.ne)

    def unwrap(self, response: ResponseAPDU) -> ResponseAPDU:
        return response

    def encrypt_key(self, key: bytes) -> bytes:
        return scp02.encrypt_key(self._s_dek, key)


def open_channel(keys: KeySet, level: Level, rng: Rng, kvn: int = 0,
                 diversify: Diversifier | None = None, scp02_i: int = SCP02_I) -> Flow[HostChannel]:
    """INITIALIZE UPDATE, check the card cryptogram, EXTERNAL AUTHENTICATE at ``level``.

    With ``diversify`` the keys are the band's own, derived from the
    diversification data the card sends in its INITIALIZE UPDATE answer.
    SCP02 does not say its i parameter there: pass the one the card's
    recognition data (GET DATA 66) announces, 55 by default.
    """
    host_challenge = rng(8)
    response = yield CommandAPDU(CLA_PROPRIETARY, Ins.INITIALIZE_UPDATE, kvn, 0x00, host_challenge,
                                 ne=256)
    if response.sw == SW.AUTHENTICATION_METHOD_BLOCKED:
        raise TransactionRefused("the domain's keys are blocked after failed authentications")
    data = expect(response, "INITIALIZE UPDATE")
    if len(data) < 28:
        raise CardProtocolError("INITIALIZE UPDATE", response.sw, f"{len(data)} bytes")
    if diversify is not None:
        keys = diversify(data[:10])
    scp = data[11]
    if scp != keys.scp:
        raise TransactionRefused(f"the domain speaks SCP0{scp}, these keys are for SCP0{keys.scp}")
    channel: HostChannel
    # EXTERNAL AUTHENTICATE is C-MACed already: its header and Lc (host cryptogram 8, MAC 8).
    header = bytes((_SECURED, Ins.EXTERNAL_AUTHENTICATE, level, 0x00, 16))
    if scp == 3:
        card_challenge, cryptogram = data[13:21], data[21:29]
        session = scp03.session_keys(keys.enc, keys.mac, host_challenge, card_challenge)
        if not hmac.compare_digest(cryptogram, scp03.card_cryptogram(session.s_mac, host_challenge,
                                                                     card_challenge)):
            raise AuthenticationFailed("wrong card cryptogram: not these keys")
        body = scp03.host_cryptogram(session.s_mac, host_challenge, card_challenge)
        mac, chaining = scp03.c_mac(session.s_mac, bytes(16), header + body)
        channel = Scp03Host(keys, level, session, chaining)
    else:
        counter, card_challenge, cryptogram = data[12:14], data[14:20], data[20:28]
        s_enc = scp02.session_key(keys.enc, scp02.S_ENC, counter)
        expected = scp02.card_cryptogram(s_enc, host_challenge, counter, card_challenge)
        if not hmac.compare_digest(cryptogram, expected):
            raise AuthenticationFailed("wrong card cryptogram: not these keys")
        body = scp02.host_cryptogram(s_enc, counter, card_challenge, host_challenge)
        s_mac = scp02.session_key(keys.mac, scp02.C_MAC, counter)
        mac = scp02.c_mac(s_mac, bytes(8), header + body)
        channel = Scp02Host(keys, level, counter, mac, scp02_i)
    channel.div_data = data[:10]
    answer = yield external_authenticate(body + mac, cla=_SECURED, p1=level)
    if answer.sw == SW.VERIFY_FAILED:
        raise AuthenticationFailed("the card refused our host cryptogram")
    expect(answer, "EXTERNAL AUTHENTICATE")
    return channel


# -- card management commands (GP Card Specification 2.3, chapter 11) ---------------------


def _lv(*items: bytes) -> bytes:
    return b"".join(bytes((len(item),)) + item for item in items)


def install(load_file: bytes, module: bytes, aid: bytes, privileges: bytes = b"\x00",
            parameters: bytes = b"\xc9\x00", make_selectable: bool = True) -> CommandAPDU:
    p1 = 0x0C if make_selectable else 0x04
    return CommandAPDU(CLA_PROPRIETARY, Ins.INSTALL, p1, 0x00,
                       _lv(load_file, module, aid, privileges, parameters, b""), ne=256)


def install_for_personalization(aid: bytes) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.INSTALL, 0x20, 0x00,
                       b"\x00\x00" + _lv(aid) + b"\x00\x00\x00", ne=256)


def store_data(dgis: bytes, block: int, last: bool, encrypted: bool) -> CommandAPDU:
    p1 = 0x08 | (0x80 if last else 0) | (0x60 if encrypted else 0)
    return CommandAPDU(CLA_PROPRIETARY, Ins.STORE_DATA, p1, block & 0xFF, dgis)


def delete(aid: bytes, related: bool = False) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.DELETE, 0x00, 0x80 if related else 0x00,
                       tlv.encode(0x4F, aid), ne=256)


def set_status(aid: bytes, lock: bool, with_applications: bool = False) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.SET_STATUS, 0x60 if with_applications else 0x40,
                       0x80 if lock else 0x00, aid)


def set_card_state(state: int) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.SET_STATUS, 0x80, state)


get_status = gp_status.get_status


def put_key(channel: HostChannel, new: KeySet, replace: int = 0) -> CommandAPDU:
    """PUT KEY of a whole key set (ENC, MAC, DEK) under the current DEK."""
    body = bytes((new.version,))
    for key in (new.enc, new.mac, new.dek):
        block = channel.encrypt_key(key)
        if new.scp == 3:
            block = bytes((len(key),)) + block
        body += bytes((new.key_type, len(block))) + block + b"\x03" + channel.kcv(key)
    return CommandAPDU(CLA_PROPRIETARY, Ins.PUT_KEY, replace, 0x81, body, ne=256)


#: One row of GET STATUS (the record the card builds, :mod:`applets.gp.status`).
Registered = gp_status.Record
parse_status = gp_status.parse_tagged


def complete(command: CommandAPDU) -> Flow[ResponseAPDU]:
    """Send ``command`` and gather an answer the card sends in parts: while it says 61xx,
    GET RESPONSE for xx more bytes (00: 256) on the same channel (ISO/IEC 7816-4 5.1.3)."""
    response = yield command
    data = response.data
    while response.sw >> 8 == SW.BYTES_REMAINING >> 8:
        response = yield get_response(response.sw & 0xFF or 256, command.channel)
        data += response.data
    return ResponseAPDU(data, response.sw)


def status(channel: HostChannel, scope: int, aid: bytes = b"") -> Flow[list[Registered]]:
    """The registry records of ``scope`` the channel's domain may see, every page of them:
    GET STATUS, then the next occurrences for as long as the card answers 6310 (GPCS
    11.4.2). Nothing to report (6A88) is an empty list."""
    request = gp_status.GetStatus(gp_status.Scope(scope), aid)
    records: list[Registered] = []
    answer = yield from channel.transmit(request.command())
    while True:
        if answer.sw == SW.REFERENCED_DATA_NOT_FOUND and not records:
            return records
        if answer.sw not in (SW.OK, SW.MORE_DATA_AVAILABLE):
            raise CardProtocolError(f"GET STATUS {scope:02X}", answer.sw)
        try:
            records += parse_status(answer.data)
        except ValueError as error:
            raise CardProtocolError(f"GET STATUS {scope:02X}", answer.sw, str(error)) from error
        if answer.sw == SW.OK:
            return records
        if not answer.data:
            raise CardProtocolError(f"GET STATUS {scope:02X}", answer.sw, "6310 with no records")
        next_page = gp_status.GetStatus(request.scope, aid, next_occurrence=True)
        answer = yield from channel.transmit(next_page.command())


def dgi_blocks(dgis: Iterable[tuple[int, bytes]], limit: int = 239) -> list[bytes]:
    """DGIs packed into STORE DATA blocks of at most ``limit`` bytes (one DGI never split)."""
    blocks: list[bytes] = [b""]
    for dgi, value in dgis:
        encoded = dgi_codec.encode(dgi, value)
        if blocks[-1] and len(blocks[-1]) + len(encoded) > limit:
            blocks.append(b"")
        blocks[-1] += encoded
    return blocks
