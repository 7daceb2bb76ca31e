"""PBOC 3.0 (JR/T 0025, UICS) debit/credit and e-cash cryptography, shared by card, POS and issuer.

There is exactly one implementation of each rule here; the e-cash applet, the
POS terminal and the issuer's host all call it.

==========================  =================================================
card key (MK-AC, MK-MAC)    3DES(IMK, X ‖ ¬X), X = rightmost 16 digits of
                            PAN ‖ PSN, zero-padded on the left; odd parity
session key (AC and MAC)    3DES(MK, 00..00 ‖ ATC) ‖ 3DES(MK, 00..00 ‖ ¬ATC),
                            6 zero bytes before each
AC (ARQC, TC, AAC)          MAC(SK-AC, 9F02 ‖ 9F03 ‖ 9F1A ‖ 95 ‖ 5F2A ‖ 9A ‖
                            9C ‖ 9F37 ‖ 82 ‖ 9F36 ‖ CVR), 8 bytes
ARPC (method 1)             3DES(SK-AC, ARQC ⊕ (ARC ‖ 00..00))
script MAC                  MAC(SK-MAC, CLA INS P1 P2 Lc ‖ ATC ‖ ARQC ‖
                            data), leftmost 4 bytes
==========================  =================================================

MAC is ISO/IEC 9797-1 MAC algorithm 3 (the retail MAC) with padding method 2
(80 always appended) and a zero IV. The card key is EMV Book 2 A1.4.1
option A; the issuer keeps one master key per purpose (AC, MAC) and the card
one derived key of each.

The session key is *not* EMV's common session key derivation (Book 2
A1.3.1, R = ATC ‖ 00..00 with F0 / 0F in its third byte): UnionPay cards
encipher the ATC and its complement, each left-padded with six zero bytes,
under the card key, and use the same rule for the AC key and the script MAC
key. JR/T 0025 itself is not public; the rule was checked against:

- the worked example "TC、ARQC、AAC及ARPC校验方式" (cnblogs.com/ttss/p/4364328,
  reposted at blog.csdn.net/freud_lv/article/details/24518351), which
  publishes the card key and the session key for ATC 03D3;
- the worked example "金融IC卡 ARQC和ARPC计算方法和实例"
  (cnblogs.com/1024Planet/p/6256545), a CVN 01 UnionPay ARQC and ARPC that
  this derivation and padding method 2 reproduce (method 1 does not);
- two public PBOC e-cash top-up programs, github fightyz/mpos
  (pbocKeyGenerator/SessionKeyGen, MACGen, tasks/ChargeTask) and
  FourTree/Ecash (ActivityLoad.getIssuerData), which derive the session key
  this way and MAC the 9F79 script as 04 DA 9F 79 0A ‖ ATC ‖ ARQC ‖ balance,
  algorithm 3, padding 80, 4 bytes. pyemv's generate_command_mac documents
  the same input (header ‖ ATC ‖ ARQC ‖ data) for EMV secure messaging.

The worked examples print card keys without parity adjustment; DES ignores
parity bits, so every cryptogram is the same either way. Session keys are
used as derived, like the examples.
"""

from __future__ import annotations

from applets.crypto.des import encrypt_ecb, mac_algorithm3
from applets.pboc import crypto as pboc

SCRIPT_MAC_SIZE = 4
_PAN_DIGITS = 19
_X_DIGITS = 16


def _check_key(key: bytes, name: str) -> None:
    if len(key) != 16:
        raise ValueError(f"the {name} is a 16-byte two-key Triple DES key, got {len(key)} bytes")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _odd_parity(key: bytes) -> bytes:
    """Each byte's low bit set so that the byte has an odd number of ones (EMV A1.4)."""
    return bytes(b & 0xFE | (bin(b >> 1).count("1") + 1) % 2 for b in key)


def icc_master_key(issuer_master_key: bytes, pan: str, psn: int = 0) -> bytes:
    """EMV Book 2 Annex A1.4.1 option A: the card's 16-byte key from the issuer's master key,
    the PAN (digits) and the PAN sequence number; parity adjusted to odd as EMV says.

    UnionPay's "rightmost 14 PAN digits ‖ PSN" is the same X for any PAN.
    """
    _check_key(issuer_master_key, "issuer master key")
    x = option_a_data(pan, psn)
    return _odd_parity(pboc.diversify(issuer_master_key, x))


def option_a_data(pan: str, psn: int = 0) -> bytes:
    """X of option A: the rightmost 16 digits of PAN ‖ PSN, zero-padded, as 8 bytes. A key
    store that derives ``3DES(IMK, X ‖ ¬X)`` (the PBOC dispersion) yields the card key, but
    for the parity bits, which DES ignores."""
    if not (0 < len(pan) <= _PAN_DIGITS and pan.isascii() and pan.isdigit()):
        raise ValueError(f"the PAN is 1 to {_PAN_DIGITS} decimal digits, got {pan!r}")
    if not 0 <= psn <= 99:
        raise ValueError(f"the PAN sequence number is two digits, got {psn}")
    return bytes.fromhex(f"{pan}{psn:02d}"[-_X_DIGITS:].zfill(_X_DIGITS))


def session_key(icc_master_key: bytes, atc: int) -> bytes:
    """The 16-byte session key of one transaction from the card's master key and its 2-byte ATC,
    as PBOC 3.0 / UICS derives it for application cryptograms and for the issuer script MAC.

    Left half 3DES(MK, 00..00 ‖ ATC), right half 3DES(MK, 00..00 ‖ (ATC ⊕ FFFF)); pass the AC
    master key for the AC and ARPC, the MAC master key for the script MAC.
    """
    _check_key(icc_master_key, "card master key")
    if not 0 <= atc <= 0xFFFF:
        raise ValueError(f"the ATC has 2 bytes, got {atc}")
    return encrypt_ecb(icc_master_key, atc.to_bytes(8) + (atc ^ 0xFFFF).to_bytes(8))


def application_cryptogram(session_key: bytes, data: bytes) -> bytes:
    """The 8-byte AC (ARQC / TC / AAC) over the concatenated CDOL1 / transaction data:
    ISO/IEC 9797-1 MAC algorithm 3 with the padding PBOC uses (method 2: 80, then 00s).

    ``data`` is what the card's CVN 01 covers, in this order: amount authorised (9F02),
    amount other (9F03), terminal country (9F1A), TVR (95), currency (5F2A), date (9A),
    type (9C), unpredictable number (9F37), AIP (82), ATC (9F36) and the 4-byte CVR
    from the IAD (9F10).
    """
    _check_key(session_key, "AC session key")
    return mac_algorithm3(session_key, data, padding=2)


def arpc(session_key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1 (EMV Book 2 A1.2.1): 3DES(SK, ARQC XOR (ARC || 00..00)), 8 bytes.

    ``arc`` is the 2-byte authorisation response code as sent in 8A, e.g. ASCII "00" = 3030.
    """
    _check_key(session_key, "AC session key")
    if len(arqc) != 8 or len(arc) != 2:
        raise ValueError(f"ARPC method 1 takes an 8-byte ARQC and a 2-byte ARC, "
                         f"got {len(arqc)} and {len(arc)} bytes")
    return encrypt_ecb(session_key, _xor(arqc, arc + bytes(6)))


def script_mac(session_key: bytes, data: bytes) -> bytes:
    """The 4-byte MAC of an issuer script command (EMV Book 2 9.2.3 as PBOC applies it).

    ``data`` is exactly: CLA INS P1 P2 Lc ‖ ATC (2) ‖ ARQC (8) ‖ command data, where
    Lc counts the command data plus this 4-byte MAC; ATC and ARQC are those of the
    transaction's first GENERATE AC, MACed but not sent (card and issuer both know them);
    the command data is what follows the header, plain or enciphered, without the MAC.
    The e-cash top-up PUT DATA 9F79 is ``04 DA 9F 79 0A ‖ ATC ‖ ARQC ‖ balance (6)``.
    ``session_key`` is :func:`session_key` of the card's MAC master key and that ATC.
    """
    _check_key(session_key, "MAC session key")
    return mac_algorithm3(session_key, data, padding=2)[:SCRIPT_MAC_SIZE]
