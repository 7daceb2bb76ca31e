"""Card production life cycle data (CPLC, GET DATA 9F7F): who made the band's chip, and when.

42 bytes of fixed fields, in the order GlobalPlatform tools print them.
The band reports an NXP-class secure element with
its serial number taken from the UID.
"""

from __future__ import annotations

from construct import Bytes, Struct

FIELDS = (
    ("ic_fabricator", 2), ("ic_type", 2), ("os_id", 2), ("os_release_date", 2),
    ("os_release_level", 2), ("ic_fabrication_date", 2), ("ic_serial_number", 4),
    ("ic_batch_identifier", 2), ("ic_module_fabricator", 2), ("ic_module_packaging_date", 2),
    ("icc_manufacturer", 2), ("ic_embedding_date", 2), ("ic_pre_personalizer", 2),
    ("ic_pre_personalization_date", 2), ("ic_pre_personalization_equipment", 4),
    ("ic_personalizer", 2), ("ic_personalization_date", 2),
    ("ic_personalization_equipment", 4),
)
CPLC = Struct(*[name / Bytes(size) for name, size in FIELDS])


def cplc(uid: bytes) -> bytes:
    """The band's CPLC: NXP (4790) chip and OS, dates in the YDDD format, serial from the UID."""
    values = {name: bytes(size) for name, size in FIELDS}
    values.update(ic_fabricator=bytes.fromhex("4790"), ic_type=bytes.fromhex("D321"),
                  os_id=bytes.fromhex("4791"), os_release_date=bytes.fromhex("5100"),
                  os_release_level=bytes.fromhex("0300"), ic_serial_number=uid[-4:],
                  ic_batch_identifier=uid[1:3], icc_manufacturer=bytes.fromhex("4B4F"))
    return bytes(CPLC.build(values))


def parse(data: bytes) -> dict[str, bytes]:
    """The named fields of a CPLC (42 bytes)."""
    if len(data) != CPLC.sizeof():
        raise ValueError(f"a CPLC has {CPLC.sizeof()} bytes, got {len(data)}")
    parsed = CPLC.parse(data)
    return {name: bytes(parsed[name]) for name, _ in FIELDS}
