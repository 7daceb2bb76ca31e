"""What the e-cash card publishes, declared once for the card, the issuer and the terminal.

The records, the DOLs, the AFL, the log format and the layout of the Issuer
Application Data are built here from the card's public profile, so the
issuer certifies exactly the static data the card will later serve and the
POS parses exactly what the card builds.

=========  ======================================================  ===========
record     content                                                 in the ODA
=========  ======================================================  ===========
SFI 1, 1   57 track 2 equivalent, 5F20 holder name                 no
SFI 2, 1   5A PAN, 5F24 expiry, 5F25 effective, 5F28 country,       yes
           5F34 PSN, 8C CDOL1, 8D CDOL2, 8E CVM list, 9F07 usage
           control, 9F08 version, 9F4A (82: AIP signed too)
SFI 3, 1   8F CA key index, 90 issuer certificate, 92, 9F32        no
SFI 3, 2   9F46 ICC certificate, 9F47, 9F48                         no
SFI 11     the transaction log, 10 records of :data:`LOG_FORMAT`   (read only)
=========  ======================================================  ===========
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from construct import Bytes, Int8ub, Int16ub, Struct

from applets import bcd, tlv
from applets.emv.oda import Certificate
from applets.layout import Layout

#: UnionPay's registered application provider id and the PBOC debit/credit application.
UNIONPAY_RID = bytes.fromhex("A000000333")
ECASH_AID = bytes.fromhex("A000000333010101")
PPSE_AID = b"2PAY.SYS.DDF01"

AIP = bytes.fromhex("7C00")  # SDA, DDA, cardholder verification, risk management, issuer auth
AFL = bytes.fromhex("08010100" "10010101" "18010200")
LOG_SFI, LOG_RECORDS = 0x0B, 10
CDOL1 = bytes.fromhex("9F0206" "9F0306" "9F1A02" "9505" "5F2A02" "9A03" "9C01" "9F3704"
                      "9F2103" "9F4E14")
CDOL2 = bytes.fromhex("8A02" "9F3704")
#: qPBOC: the Terminal Transaction Qualifiers first, then what CDOL1 would ask.
PDOL = bytes.fromhex("9F6604") + CDOL1
#: The log records' format (9F4F), the same data the card keeps per approved purchase.
LOG_FORMAT = bytes.fromhex("9A03" "9F2103" "9F0206" "9F0306" "9F1A02" "5F2A02" "9F4E14" "9C01"
                           "9F3602")
CVM_LIST = bytes(8) + bytes.fromhex("1F00")  # no CVM, always: QuickPass below the CVM limit
USAGE_CONTROL = bytes.fromhex("FF00")
VERSION = bytes.fromhex("0030")
#: The transaction data the AC covers (then AIP, ATC and the CVR: :func:`ac_input`).
AC_DATA = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)


@dataclass(frozen=True, slots=True)
class Profile:
    """The card's public identity: what its records say."""

    pan: str
    psn: int
    expiry: bytes  # YYMMDD, BCD
    effective: bytes  # YYMMDD, BCD
    holder: str
    country: bytes = bytes.fromhex("0156")
    currency: bytes = bytes.fromhex("0156")
    label: str = "UnionPay"
    priority: int = 1

    def __post_init__(self) -> None:
        if not (self.pan.isdigit() and 12 <= len(self.pan) <= 19):
            raise ValueError("a PAN has 12 to 19 digits")
        if not 0 <= self.psn <= 99 or not 1 <= self.priority <= 15:
            raise ValueError("the PSN is 0-99 and the priority 1-15")
        if len(self.expiry) != 3 or len(self.effective) != 3:
            raise ValueError("dates are YYMMDD in 3 BCD bytes")

    @property
    def pan_bytes(self) -> bytes:
        digits = self.pan + "F" * (len(self.pan) % 2)
        return bytes.fromhex(digits)

    @property
    def track2(self) -> bytes:
        digits = f"{self.pan}D{self.expiry.hex()[:4]}2200000000"
        return bytes.fromhex(digits + "F" * (len(digits) % 2))


def pan_for_certificate(pan: str) -> bytes:
    """The PAN as an ICC certificate holds it: padded with F to 10 bytes."""
    return bytes.fromhex(pan.ljust(20, "F"))


def issuer_id(pan: str) -> bytes:
    """The issuer identifier of an issuer certificate: the PAN's leftmost 8 digits at most."""
    return bytes.fromhex(pan[:8].ljust(8, "F"))


def _record(*items: tuple[int, bytes]) -> bytes:
    return tlv.constructed(0x70, *(tlv.encode(tag, value) for tag, value in items if value))


def signed_record(profile: Profile) -> bytes:
    """SFI 2 record 1: the record whose data the ICC certificate's hash covers."""
    return _record((0x5A, profile.pan_bytes), (0x5F24, profile.expiry),
                   (0x5F25, profile.effective), (0x5F28, profile.country),
                   (0x5F34, bcd.encode(f"{profile.psn:02d}")), (0x8C, CDOL1), (0x8D, CDOL2),
                   (0x8E, CVM_LIST), (0x9F07, USAGE_CONTROL), (0x9F08, VERSION),
                   (0x9F4A, b"\x82"))


def static_data(profile: Profile) -> bytes:
    """The static data to be authenticated (Book 3 10.3): SFI 2's record value, then the AIP."""
    return tlv.decode(signed_record(profile))[0].value + AIP


def records(profile: Profile, ca_index: int, issuer: Certificate,
            icc: Certificate) -> dict[tuple[int, int], bytes]:
    """Every record the AFL names, by (SFI, record number)."""
    return {
        (1, 1): _record((0x57, profile.track2), (0x5F20, profile.holder.encode()[:26])),
        (2, 1): signed_record(profile),
        (3, 1): _record((0x8F, bytes((ca_index,))), (0x90, issuer.certificate),
                        (0x92, issuer.remainder), (0x9F32, issuer.exponent)),
        (3, 2): _record((0x9F46, icc.certificate), (0x9F47, icc.exponent),
                        (0x9F48, icc.remainder)),
    }


@dataclass(frozen=True, slots=True)
class AflEntry:
    sfi: int
    first: int
    last: int
    signed: int  # how many records from ``first`` the static data includes


def afl_entries(afl: bytes) -> list[AflEntry]:
    """The AFL's entries; ValueError when it is not a list of 4-byte entries."""
    if len(afl) % 4 or not afl:
        raise ValueError("an AFL is a non-empty list of 4-byte entries")
    entries = []
    for i in range(0, len(afl), 4):
        sfi, first, last, signed = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
        if not 1 <= sfi <= 30 or first == 0 or last < first or signed > last - first + 1:
            raise ValueError(f"AFL entry {afl[i:i + 4].hex().upper()} is malformed")
        entries.append(AflEntry(sfi, first, last, signed))
    return entries


@dataclass(frozen=True, slots=True)
class LogEntry:
    date: bytes
    time: bytes
    amount: bytes
    other_amount: bytes
    country: bytes
    currency: bytes
    merchant: bytes
    tx_type: int
    atc: bytes


LOG_ENTRY = Layout(Struct(
    "date" / Bytes(3), "time" / Bytes(3), "amount" / Bytes(6), "other_amount" / Bytes(6),
    "country" / Bytes(2), "currency" / Bytes(2), "merchant" / Bytes(20), "tx_type" / Int8ub,
    "atc" / Bytes(2),
), LogEntry)


@dataclass(frozen=True, slots=True)
class IssuerData:
    """Issuer Application Data (9F10): the 7 standard bytes (length, key index, cryptogram
    version, CVR with its length), then the issuer's own: the EC balance after the
    transaction, the ATC of the last transaction the issuer authenticated (EXTERNAL
    AUTHENTICATE) and how many issuer script commands the card applied in it."""

    length: int
    key_index: int
    cryptogram_version: int
    cvr_length: int
    cvr: bytes
    own_length: int
    ec_balance: bytes
    last_issuer_atc: int
    scripts: int


ISSUER_DATA = Layout(Struct(
    "length" / Int8ub, "key_index" / Int8ub, "cryptogram_version" / Int8ub,
    "cvr_length" / Int8ub, "cvr" / Bytes(3), "own_length" / Int8ub, "ec_balance" / Bytes(6),
    "last_issuer_atc" / Int16ub, "scripts" / Int8ub,
), IssuerData)

#: CVR byte 1: the cryptogram of the first GENERATE AC (or qPBOC GPO); the second not asked.
CVR_AAC, CVR_TC, CVR_ARQC = 0x80, 0x90, 0xA0
#: Cryptogram versions: UnionPay's 01 covers the CVR of the IAD; the demo bank's 11 covers the
#: whole IAD, so a host behind an untrusted phone learns the EC balance and what became of its
#: last script from the card itself (the over-the-air EC top-up needs both).
CVN_UNIONPAY, CVN_KOALA = 0x01, 0x11


def issuer_data(cvr: int, balance: int, last_issuer_atc: int, scripts: int) -> bytes:
    return ISSUER_DATA.build(IssuerData(7, 1, CVN_KOALA, 3, bytes((cvr, 0, 0)), 9, amount(balance),
                                        last_issuer_atc, scripts))


def amount(fen: int) -> bytes:
    """An amount as EMV sends it: n12, 6 bytes of BCD, in the currency's minor unit (fen)."""
    if not 0 <= fen <= 999_999_999_999:
        raise ValueError("an amount is 0 to 12 digits")
    return bcd.encode(f"{fen:012d}")


def fen(value: bytes) -> int:
    """The amount in an n12 field; ValueError when it is not BCD."""
    return int(bcd.decode(value))


def ac_input(values: Mapping[int, bytes], atc: int, iad: bytes) -> bytes:
    """What the application cryptogram is computed over, card and issuer alike: the
    transaction data, AIP, ATC, then (CVN 01) the 4-byte CVR of the IAD, its length byte and
    3 bytes, or (CVN 11) the whole IAD."""
    covered = iad if len(iad) > 2 and iad[2] == CVN_KOALA else iad[3:7]
    return b"".join(values[tag] for tag in AC_DATA) + AIP + atc.to_bytes(2) + covered
