"""Data grouping identifiers (EMV CPS / GlobalPlatform STORE DATA): 2-byte DGI, length, value.

The length is one byte, or FF followed by two bytes for 255 and more.
"""

from __future__ import annotations


def encode(dgi: int, value: bytes) -> bytes:
    length = bytes((len(value),)) if len(value) < 0xFF else b"\xff" + len(value).to_bytes(2)
    return dgi.to_bytes(2) + length + value


def decode(data: bytes) -> list[tuple[int, bytes]]:
    """The DGIs of ``data`` in order; ValueError with the byte offset if malformed."""
    out, i = [], 0
    while i < len(data):
        if i + 3 > len(data):
            raise ValueError(f"truncated DGI at byte {i}")
        dgi, n, i = int.from_bytes(data[i:i + 2]), data[i + 2], i + 3
        if n == 0xFF:
            if i + 2 > len(data):
                raise ValueError(f"truncated DGI length at byte {i}")
            n, i = int.from_bytes(data[i:i + 2]), i + 2
        if i + n > len(data):
            raise ValueError(f"DGI {dgi:04X} runs past the data at byte {i}")
        out.append((dgi, data[i:i + n]))
        i += n
    return out
