"""The door access card of one site, and a door of that site: what the card tests and the door
reader's own tests both tap."""

from __future__ import annotations

from datetime import datetime

from applets.access.perso import AccessPersonalisation
from applets.access.wire import Permission
from issuer.products import TRANSIT
from reader.door import DoorReader
from reader.trace import Exchange
from tests.conftest import NOW, Clock, make_band, seeded
from wallet.band import Band

H = bytes.fromhex
SITE_KEY = H("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
CARD = H("4B4F414C41000001")
FRONT, GARAGE, ROOF, LAB = 0x00000101, 0x00000102, 0x00000103, 0x00000999
PERMITS = (
    Permission(FRONT, H("20260101"), H("20361231")),
    Permission(GARAGE, H("20270101"), H("20271231")),  # not valid yet on NOW (2026-11-23)
    Permission(ROOF, H("20250101"), H("20251231")),  # over
)


def access_band(site_key: bytes = SITE_KEY, card_id: bytes = CARD,
                permissions: tuple[Permission, ...] = PERMITS) -> Band:
    band = make_band(TRANSIT)
    band.add_access_card(AccessPersonalisation.for_site(site_key, card_id, permissions))
    return band


def door(door_id: int = FRONT, key: bytes = SITE_KEY, now: datetime = NOW,
         seed: int = 11) -> DoorReader:
    return DoorReader(door_id, key, Clock(now), seeded(seed))


class Replay:
    """A card emulator that answers with a recorded tap's answers, whatever is asked."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = iter(answers)
        self.trace: list[Exchange] = []

    def transmit(self, apdu: bytes) -> bytes:
        return next(self.answers)
