"""The card issuers the clearing centre clears for, and the keys it checks their cards with.

A T-Union card names its issuer in the first two bytes of its application serial; each
member lends the centre its TAC keys (in production through an HSM; here the documented
demo masters), so the centre believes a record only on the card's own proof. Beijing's
transit and canteen issuers are ``issuer.products``'; :data:`TIANJIN` is another T-Union
city's issuer, with its own issuer id and keys, whose cards ride here and are cleared to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from applets.brands import TRANSIT as BEIJING_BRAND
from applets.brands import Brand
from applets.pboc import crypto
from issuer.products import PRODUCTS, MasterKeys, Product

#: A card's TAC key from its diversification data.
TacKey = Callable[[bytes], bytes]

TIANJIN = Product(
    brand=Brand("tianjin", "Tianjin City Card (T-Union)", BEIJING_BRAND.aid,
                bytes.fromhex("3000" "0000" "FFFFFFFF"), 0x1001),
    city=bytes.fromhex("3000"),
    master=MasterKeys(bytes.fromhex("A1" * 8 + "B2" * 8), bytes.fromhex("C3" * 8 + "D4" * 8),
                      bytes.fromhex("E5" * 8 + "F6" * 8), bytes.fromhex("0F" * 8 + "1E" * 8)),
    max_balance=100_000,
    has_transit_record=True,
    domain_aid=bytes.fromhex("A00000015153504B4F414C4103"),
    gp_master=bytes(range(0x30, 0x40)),
)


@dataclass(frozen=True, slots=True)
class Member:
    """An issuer the centre clears for: its name, its serials' prefix, its cards' TAC keys."""

    name: str
    prefix: bytes
    tac_key: TacKey


def demo_member(item: Product) -> Member:
    return Member(item.name, item.issuer_id[:2], lambda div: item.demo_card_key("tac", div))


MEMBERS: Mapping[bytes, Member] = {
    member.prefix: member for member in map(demo_member, (*PRODUCTS.values(), TIANJIN))}


class CardKeys:
    """Each card's TAC key, derived once per card (a day's riders tap many times)."""

    def __init__(self, members: Mapping[bytes, Member] = MEMBERS, size: int = 200_000) -> None:
        self.members = members
        self._keys: dict[bytes, bytes] = {}
        self._size = size

    def member(self, serial: bytes) -> Member | None:
        return self.members.get(serial[:2])

    def tac_key(self, serial: bytes) -> bytes | None:
        """The card's TAC key, None for a card of no member."""
        key = self._keys.get(serial)
        if key is None:
            member = self.member(serial)
            if member is None:
                return None
            if len(self._keys) >= self._size:
                self._keys.clear()
            key = self._keys[serial] = member.tac_key(crypto.div_data(serial))
        return key
