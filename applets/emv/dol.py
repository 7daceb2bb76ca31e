"""Data object lists (EMV Book 3 5.4): the card names the data it needs, the terminal sends them.

A DOL is a list of (tag, length) pairs with no values. The card publishes its
PDOL in the FCI and its CDOL1 in a record; the terminal answers with the
values concatenated in that order, each fitted to its length, and the card
cuts them apart again. Both sides use this module so they agree on the cut.
"""

from __future__ import annotations

from collections.abc import Mapping

from applets import tlv

#: Data objects of format n (BCD, right-justified): fitted by padding or cutting on the left.
NUMERIC = frozenset({0x9F02, 0x9F03, 0x9F1A, 0x5F2A, 0x9A, 0x9C, 0x9F21, 0x9F41})


class DolError(ValueError):
    """A DOL, or data sent for one, that does not parse."""


def entries(dol: bytes) -> list[tuple[int, int]]:
    """The (tag, length) pairs of ``dol``."""
    pairs, i = [], 0
    try:
        while i < len(dol):
            tag, i = tlv.read_tag(dol, i)
            if i >= len(dol):
                raise DolError(f"tag {tag:X} has no length")
            pairs.append((tag, dol[i]))
            i += 1
    except tlv.TLVError as error:
        raise DolError(str(error)) from error
    return pairs


def size(dol: bytes) -> int:
    return sum(length for _, length in entries(dol))


def build(dol: bytes, values: Mapping[int, bytes]) -> bytes:
    """The terminal's data for ``dol``: each value fitted to its length (Book 3 5.4), zeros
    for what the terminal does not have."""
    out = bytearray()
    for tag, length in entries(dol):
        value = values.get(tag, b"")
        if tag in NUMERIC:
            value = value[-length:] if len(value) > length else bytes(length - len(value)) + value
        else:
            value = value[:length] + bytes(max(length - len(value), 0))
        out += value
    return bytes(out)


def split(dol: bytes, data: bytes) -> dict[int, bytes]:
    """The card's view of the terminal's ``data`` for ``dol``; DolError on a wrong length."""
    pairs = entries(dol)
    expected = sum(length for _, length in pairs)
    if len(data) != expected:
        raise DolError(f"the DOL asks for {expected} bytes, got {len(data)}")
    values, i = {}, 0
    for tag, length in pairs:
        values[tag] = data[i:i + length]
        i += length
    return values
