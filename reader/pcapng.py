"""pcapng, the capture format Wireshark and tshark read, and the ISO 14443 link type in it.

A file is one section: a Section Header Block, one Interface Description
Block naming the link type and the time-stamp resolution, then an Enhanced
Packet Block per packet (draft-ietf-opsawg-pcapng 4.1, 4.2, 4.3). Every
block is little-endian here (the byte-order magic says so to readers),
32-bit aligned, and carries its total length at both ends so a reader can
walk the file either way. Blocks are built as bytes; :class:`PcapngWriter`
only hands them to a binary file object, so nothing here opens a file.

``LINKTYPE_ISO_14443`` (264) packets start with a 4-byte pseudo-header:
version 0, an event byte, and the length of the data after the header,
big-endian (https://www.kaiser.cx/posts/pcap-iso14443/; Wireshark's
``packet-iso14443.c`` reads exactly that). Data events carry one frame,
CRC included unless the event says it was dropped; field events carry none.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Protocol

LINKTYPE_ISO_14443 = 264

BYTE_ORDER_MAGIC = 0x1A2B3C4D
SECTION_HEADER = 0x0A0D0D0A
INTERFACE_DESCRIPTION = 0x00000001
ENHANCED_PACKET = 0x00000006

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
EPB_FLAGS = 2

MICROSECONDS = 6
"""``if_tsresol`` 6: time stamps count 10**-6 s (the default, written out for clarity)."""

_UNSPECIFIED_SECTION_LENGTH = -1
_MAX_TIMESTAMP = (1 << 64) - 1


class Direction(IntEnum):
    """The direction bits (0-1) of ``epb_flags``, from the capturing interface's side."""

    UNKNOWN = 0
    INBOUND = 1
    OUTBOUND = 2


class Iso14443Event(IntEnum):
    """The event byte of the ISO 14443 pseudo-header."""

    PICC_TO_PCD = 0xFF
    PCD_TO_PICC = 0xFE
    FIELD_OFF = 0xFD
    FIELD_ON = 0xFC
    PICC_TO_PCD_CRC_DROPPED = 0xFB
    PCD_TO_PICC_CRC_DROPPED = 0xFA

    @property
    def is_data(self) -> bool:
        return self not in (Iso14443Event.FIELD_OFF, Iso14443Event.FIELD_ON)


class BinarySink(Protocol):
    """Where blocks go: an open binary file, ``io.BytesIO``, a socket's file."""

    def write(self, data: bytes, /) -> object: ...


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def option(code: int, value: bytes) -> bytes:
    """One option: code, length, value padded to 32 bits (draft 3.5)."""
    if not 0 <= code <= 0xFFFF or len(value) > 0xFFFF:
        raise ValueError(f"option {code} with {len(value)} bytes does not fit 16-bit fields")
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(pairs: list[tuple[int, bytes]]) -> bytes:
    """Options end with ``opt_endofopt``; a block without any carries none at all."""
    if not pairs:
        return b""
    return b"".join(option(code, value) for code, value in pairs) + option(OPT_ENDOFOPT, b"")


def _block(block_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("a block body is a whole number of 32-bit words")
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _text(pairs: list[tuple[int, bytes]], code: int, text: str | None) -> None:
    if text is not None:
        pairs.append((code, text.encode("utf-8")))


def section_header(application: str | None = None, comment: str | None = None,
                   hardware: str | None = None, os_name: str | None = None) -> bytes:
    """The Section Header Block: byte-order magic, version 1.0, section length unspecified."""
    pairs: list[tuple[int, bytes]] = []
    _text(pairs, OPT_COMMENT, comment)
    _text(pairs, SHB_HARDWARE, hardware)
    _text(pairs, SHB_OS, os_name)
    _text(pairs, SHB_USERAPPL, application)
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, _UNSPECIFIED_SECTION_LENGTH)
    return _block(SECTION_HEADER, body + _options(pairs))


def interface_description(linktype: int, name: str | None = None,
                          description: str | None = None, snaplen: int = 0) -> bytes:
    """An Interface Description Block; its time stamps are microseconds, ``snaplen`` 0 means
    packets are never cut."""
    if not 0 <= linktype <= 0xFFFF:
        raise ValueError(f"a link type is 16 bits, not {linktype}")
    pairs: list[tuple[int, bytes]] = []
    _text(pairs, IF_NAME, name)
    _text(pairs, IF_DESCRIPTION, description)
    pairs.append((IF_TSRESOL, bytes((MICROSECONDS,))))
    body = struct.pack("<HHI", linktype, 0, snaplen)
    return _block(INTERFACE_DESCRIPTION, body + _options(pairs))


def enhanced_packet(timestamp_us: int, data: bytes, interface: int = 0,
                    direction: Direction = Direction.UNKNOWN) -> bytes:
    """An Enhanced Packet Block: ``data`` captured whole at ``timestamp_us`` microseconds
    since 1970-01-01 00:00 UTC, the 64-bit count split into its high and low words."""
    if not 0 <= timestamp_us <= _MAX_TIMESTAMP:
        raise ValueError(f"time stamp {timestamp_us} us is outside 0..2**64-1")
    pairs = [] if direction is Direction.UNKNOWN else [(EPB_FLAGS, struct.pack("<I", direction))]
    body = struct.pack("<IIIII", interface, timestamp_us >> 32, timestamp_us & 0xFFFFFFFF,
                       len(data), len(data))
    return _block(ENHANCED_PACKET, body + _pad(data) + _options(pairs))


def iso14443_packet(event: Iso14443Event, data: bytes = b"") -> bytes:
    """A ``LINKTYPE_ISO_14443`` packet: version 0, ``event``, data length (big-endian), data."""
    if not event.is_data and data:
        raise ValueError(f"a {event.name} event carries no data")
    if event.is_data and not data:
        raise ValueError(f"a {event.name} event carries a frame")
    if len(data) > 0xFFFF:
        raise ValueError(f"a {len(data)}-byte frame does not fit the 16-bit length")
    return struct.pack(">BBH", 0, event, len(data)) + data


class PcapngWriter:
    """A one-interface pcapng section on ``sink``: the headers when made, then packets."""

    def __init__(self, sink: BinarySink, linktype: int, *, application: str | None = None,
                 comment: str | None = None, interface_name: str | None = None,
                 interface_description_text: str | None = None) -> None:
        self._sink = sink
        self.packets = 0
        sink.write(section_header(application, comment)
                   + interface_description(linktype, interface_name, interface_description_text))

    def packet(self, timestamp_us: int, data: bytes,
               direction: Direction = Direction.UNKNOWN) -> None:
        self._sink.write(enhanced_packet(timestamp_us, data, 0, direction))
        self.packets += 1
