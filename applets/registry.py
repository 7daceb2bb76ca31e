"""The card's registry as GlobalPlatform keeps it: life cycle states, privileges, and the entry
the card manager holds for each application instance (GP Card Specification 2.3, 5.1, 5.3,
6.6 and table 6-1)."""

from __future__ import annotations

from dataclasses import dataclass

# GlobalPlatform life cycle states (GP Card Specification 2.3, 5.1 and 5.3).
INSTALLED, SELECTABLE, PERSONALIZED = 0x03, 0x07, 0x0F
LOCKED_BIT = 0x80
CARD_OP_READY, CARD_INITIALIZED, CARD_SECURED, CARD_LOCKED, CARD_TERMINATED = (
    0x01, 0x07, 0x0F, 0x7F, 0xFF)
#: Privilege byte 1 bits (GP 2.3 Table 6-1).
SECURITY_DOMAIN, CARD_LOCK, CARD_TERMINATE, DEFAULT_SELECTED = 0x80, 0x10, 0x08, 0x04


@dataclass(frozen=True, slots=True)
class Entry:
    """A registry entry: what the card manager knows of an application instance."""

    aid: bytes
    class_name: str
    lifecycle: int = SELECTABLE
    privileges: bytes = b"\x00\x00\x00"
    domain: bytes = b""  # the associated security domain, empty for the ISD itself

    @property
    def locked(self) -> bool:
        return bool(self.lifecycle & LOCKED_BIT) and self.lifecycle != CARD_TERMINATED

    @property
    def is_domain(self) -> bool:
        return bool(self.privileges[0] & SECURITY_DOMAIN)

    def to_json(self) -> list[object]:
        return [self.aid.hex().upper(), self.class_name, self.lifecycle,
                self.privileges.hex().upper(), self.domain.hex().upper()]

    @classmethod
    def from_json(cls, item: list[object]) -> Entry:
        aid, name, lifecycle, privileges, domain = item
        return cls(bytes.fromhex(str(aid)), str(name), int(str(lifecycle)),
                   bytes.fromhex(str(privileges)), bytes.fromhex(str(domain)))
