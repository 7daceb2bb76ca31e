"""Which card a purse on the band is: its brand (name, label, AID, issuer id).

Every layer names cards the same way: the band lists its cards by brand,
terminals accept them by AID, the issuer sells them under the name. The
brand is all they share; what only the issuer knows (keys, limits, domains)
stays with its product (``issuer.products``), so the band never needs the
issuer to say what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The bank's card: on the band beside ours, in the issuer's books under this name.
ECASH = "ecash"
ECASH_LABEL = "UnionPay e-cash"


class UnknownBrand(KeyError):
    """No card brand of that name or AID."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such card brand"


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    label: str
    aid: bytes
    issuer_id: bytes  # the issuer file's first 8 bytes (a T-Union card's: city, industry)
    file_id: int  # the purse's DF under the MF, for terminals that select by file identifier


#: DF 1001 is the electronic purse's on Beijing and T-Union cards: reader apps select 3F00,
#: then 1001, then read EF 0015 (Metrodroid's ChinaCard, NFCard's StandardPboc). No standard
#: names a canteen card's DF; 1002 is the next ADF under the MF, as multi-application PBOC
#: cards number theirs, so one band's two purses never share one.
TRANSIT = Brand("transit", "Beijing Yikatong (T-Union)", bytes.fromhex("A000000632010105"),
                bytes.fromhex("1000" "0000" "FFFFFFFF"), 0x1001)
CANTEEN = Brand("canteen", "Koala Works canteen", b"\xf0" + b"KOALACANT",
                bytes.fromhex("4B4F414C41000001"), 0x1002)
BRANDS = {brand.name: brand for brand in (TRANSIT, CANTEEN)}


def brand_for_aid(aid: bytes) -> Brand:
    for brand in BRANDS.values():
        if brand.aid == aid:
            return brand
    raise UnknownBrand(f"no card brand with AID {aid.hex().upper()}")
