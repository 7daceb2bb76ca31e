"""BER-TLV (ISO/IEC 7816-4 5.2, EMV Book 3 Annex B): tags, lengths, nesting.

Tags stay as ``int`` of their encoded bytes (``0x9F0C``, ``0x6F``) because that
is how every specification names them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


class TLVError(ValueError):
    """Malformed BER-TLV; ``offset`` is where decoding failed."""

    def __init__(self, reason: str, offset: int) -> None:
        self.offset = offset
        super().__init__(f"{reason} at byte {offset}")


@dataclass(frozen=True, slots=True)
class TLV:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag.to_bytes(tag_size(self.tag))[0]
        return bool(first & 0x20)

    def children(self) -> list[TLV]:
        """Decode the value as nested TLVs (for constructed tags)."""
        return decode(self.value)

    def encode(self) -> bytes:
        return encode(self.tag, self.value)


def tag_size(tag: int) -> int:
    return max(1, (tag.bit_length() + 7) // 8)


def encode_length(n: int) -> bytes:
    """Definite length: short form below 128, long form 81/82/83 above."""
    if n < 0:
        raise ValueError("length must not be negative")
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    if size > 3:
        raise ValueError(f"length {n} too large for BER-TLV here")
    return bytes((0x80 | size,)) + n.to_bytes(size)


def encode(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(tag_size(tag)) + encode_length(len(value)) + value


def constructed(tag: int, *children: bytes) -> bytes:
    """Encode a constructed TLV from already encoded children."""
    return encode(tag, b"".join(children))


def read_tag(data: bytes, i: int) -> tuple[int, int]:
    """The tag starting at byte ``i`` and the offset after it."""
    start = i
    if i >= len(data):
        raise TLVError("missing tag", i)
    first = data[i]
    i += 1
    if first & 0x1F == 0x1F:
        while True:
            if i >= len(data):
                raise TLVError("truncated multi-byte tag", i)
            i += 1
            if not data[i - 1] & 0x80:
                break
            if i - start > 4:
                raise TLVError("tag longer than 4 bytes", start)
    return int.from_bytes(data[start:i]), i


def _read_length(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise TLVError("missing length", i)
    first = data[i]
    if first < 0x80:
        return first, i + 1
    size = first & 0x7F
    if size == 0 or size > 3:
        raise TLVError(f"unsupported length form {first:02X}", i)
    if i + 1 + size > len(data):
        raise TLVError("truncated length", i)
    return int.from_bytes(data[i + 1 : i + 1 + size]), i + 1 + size


def iterate(data: bytes) -> Iterator[TLV]:
    """Yield the TLVs of ``data`` in order; 00 and FF padding between them is skipped."""
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):
            i += 1
            continue
        tag, i = read_tag(data, i)
        length, i = _read_length(data, i)
        if i + length > len(data):
            raise TLVError(f"value of tag {tag:X} runs past the end ({length} bytes)", i)
        yield TLV(tag, bytes(data[i : i + length]))
        i += length


def decode(data: bytes) -> list[TLV]:
    return list(iterate(data))


def find(data: bytes, tag: int) -> bytes | None:
    """Depth-first search for ``tag``; None if absent."""
    for item in iterate(data):
        if item.tag == tag:
            return item.value
        if item.constructed:
            found = find(item.value, tag)
            if found is not None:
                return found
    return None
