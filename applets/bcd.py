"""Packed BCD dates and times, as PBOC and EMV terminals send them."""

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


def date_time(moment: datetime) -> tuple[bytes, bytes]:
    """(YYYYMMDD, hhmmss) of ``moment`` in BCD: the 4 + 3 bytes of PBOC transactions."""
    return encode(moment.strftime("%Y%m%d")), encode(moment.strftime("%H%M%S"))


def to_datetime(date: bytes, time: bytes) -> datetime:
    return datetime.strptime(decode(date) + decode(time), "%Y%m%d%H%M%S")
