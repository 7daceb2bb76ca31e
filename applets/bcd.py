"""Packed BCD: dates and times as PBOC and EMV terminals send them, and digit strings
padded with F nibbles (PINs, card numbers of odd length)."""

from __future__ import annotations

from datetime import datetime


def encode(digits: str) -> bytes:
    if len(digits) % 2 or not digits.isdigit():
        raise ValueError(f"BCD needs an even number of decimal digits, got {digits!r}")
    return bytes.fromhex(digits)


def decode(data: bytes) -> str:
    """Digits of ``data``; raises ValueError on a nibble above 9."""
    digits = data.hex()
    if not digits.isdigit():
        raise ValueError(f"{digits.upper()} is not BCD")
    return digits


def encode_padded(digits: str, size: int | None = None) -> bytes:
    """``digits`` in BCD, padded with F nibbles to whole bytes, or to ``size`` bytes:
    ``encode_padded("12345")`` is ``12 34 5F``."""
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"BCD holds decimal digits, got {digits!r}")
    width = 2 * (size if size is not None else (len(digits) + 1) // 2)
    if len(digits) > width:
        raise ValueError(f"{len(digits)} digits do not fit {size} bytes")
    return bytes.fromhex(digits.ljust(width, "F"))


def decode_padded(data: bytes) -> str:
    """The digits of ``data``, trailing F nibbles dropped; ValueError for any other nibble
    above 9 (an F amid the digits included)."""
    digits = data.hex().upper().rstrip("F")
    if not digits.isdigit():
        raise ValueError(f"{data.hex().upper()} is not BCD padded with F")
    return digits


def date_time(moment: datetime) -> tuple[bytes, bytes]:
    """(YYYYMMDD, hhmmss) of ``moment`` in BCD: the 4 + 3 bytes of PBOC transactions."""
    return encode(moment.strftime("%Y%m%d")), encode(moment.strftime("%H%M%S"))


def to_datetime(date: bytes, time: bytes) -> datetime:
    return datetime.strptime(decode(date) + decode(time), "%Y%m%d%H%M%S")
