"""The band's GATT service: UUIDs, characteristics, their properties and security, in one place.

Both roles (the band's GATT server, the companion's GATT client) and the
documentation read this module, so they cannot disagree.

==================  ======================================  ===============  ================
characteristic      value                                   properties       security
==================  ======================================  ===============  ================
band info           JSON: id (CPLC-derived), firmware,      read             none (what an
                    battery %, on wrist                                      unpaired phone
                                                                             may see)
card list           JSON: cards with name, serial,          read, notify     encrypted link,
                    balance_fen, answers_readers                             paired companion
control point       app-layer frame: lock, unlock,          write            encrypted link,
                    default card                                             paired companion
relay in            app-layer frame fragments: C-APDUs      write, write     encrypted link
                    from the issuer, app pairing messages   without
                                                            response
relay out           app-layer frame fragments: R-APDUs      notify           encrypted link
==================  ======================================  ===============  ================

Everything but the band info needs an encrypted link, so an unpaired phone
sees nothing else. The relay characteristics carry the app layer (:mod:`ble.framing`,
:mod:`ble.secure`): the link's own encryption (LE Secure Connections,
numeric comparison, bonded) protects against the air, the app layer binds
the companion to the band and protects every frame end to end, because a
phone's Bluetooth stack is not the band's to trust.

The phone writes every fragment of a relay message but the last as a Write
Command (write without response: no round trip per fragment) and the last
as a Write Request; a band that lacks some fragments when the last one
arrives asks for them on relay out (:mod:`ble.framing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto

#: 128-bit UUIDs of our own, in one base: KOALA-BAND-0000-...
BASE = "4b4f4c41-{:04x}-4241-4e44-000000000000"
SERVICE = BASE.format(0x0000)
DEVICE_NAME_PREFIX = "Koala"
ATT_MTU_MIN, ATT_MTU_MAX = 23, 517
ATT_HEADER = 3  # opcode + handle of a write or notification


class Access(Flag):
    READ = auto()
    WRITE = auto()
    WRITE_COMMAND = auto()  # write without response (ATT Write Command)
    NOTIFY = auto()


@dataclass(frozen=True, slots=True)
class Characteristic:
    name: str
    uuid: str
    access: Access
    encrypted: bool  # the link must be encrypted (paired and bonded) to use it


BAND_INFO = Characteristic("band info", BASE.format(0x0001), Access.READ, encrypted=False)
CARD_LIST = Characteristic("card list", BASE.format(0x0002), Access.READ | Access.NOTIFY,
                           encrypted=True)
CONTROL_POINT = Characteristic("control point", BASE.format(0x0003), Access.WRITE,
                               encrypted=True)
RELAY_IN = Characteristic("relay in", BASE.format(0x0004), Access.WRITE | Access.WRITE_COMMAND,
                          encrypted=True)
RELAY_OUT = Characteristic("relay out", BASE.format(0x0005), Access.NOTIFY, encrypted=True)
CHARACTERISTICS = (BAND_INFO, CARD_LIST, CONTROL_POINT, RELAY_IN, RELAY_OUT)


def payload_size(mtu: int) -> int:
    """The bytes one write or notification carries at ATT MTU ``mtu``."""
    if not ATT_MTU_MIN <= mtu <= ATT_MTU_MAX:
        raise ValueError(f"an ATT MTU is {ATT_MTU_MIN} to {ATT_MTU_MAX}, got {mtu}")
    return mtu - ATT_HEADER
