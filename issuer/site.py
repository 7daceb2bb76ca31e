"""The demo residential compound: the access issuer of the band's door card, and its doors.

The compound's management keeps one AES master key; its doors hold it (in a
SAM, on real doors) and each card's key is derived from it by card id
(:func:`applets.crypto.access.card_key`). The key below is a documented demo
key, like the transit operator's and the bank's.
"""

from __future__ import annotations

from datetime import date

from applets.access.perso import AccessPersonalisation
from applets.access.wire import Permission
from applets.validity import Validity

SITE_MASTER = bytes.fromhex("6B6F616C612D73697465206D61737465")
#: The compound's doors by name, with their 4-byte ids.
DOORS = {"front": 0x00010001, "garage": 0x00010002, "gym": 0x00010003}
#: What a resident's card opens: the gym is a separate subscription.
RESIDENT_DOORS = ("front", "garage")
VALIDITY_YEARS = 2


def door_id(name: str) -> int:
    try:
        return DOORS[name]
    except KeyError:
        raise ValueError(f"no door {name!r} here; doors: {', '.join(DOORS)}") from None


def resident_card(number: int, issued: date) -> AccessPersonalisation:
    """A resident's card: the resident doors from ``issued`` for two years."""
    start, end = Validity.for_years(issued, VALIDITY_YEARS).bcd()
    permissions = tuple(Permission(DOORS[name], start, end) for name in RESIDENT_DOORS)
    return AccessPersonalisation.for_site(SITE_MASTER, number.to_bytes(8), permissions)
