"""What personalises a purse, and its STORE DATA DGIs, declared once for issuer and card.

==========  ===========================================  =========
DGI         content                                      encrypted
==========  ===========================================  =========
0101        EF 0x15 issuer file (30 bytes)               no
0102        EF 0x16 holder file (55 bytes)               no
0103        EF 0x17 transit records (n x 48 bytes)       no
0104        the DF's file identifier under the MF (2)    no
0201        maximum balance (4), MAC tries (1)           no
0202        DPK version (1), DLK version (1)             no
0203        PIN try limit (1)                            no
8010        purchase key DPK, index 01 (16 bytes)        under DEK
8011        load key DLK, index 01 (16 bytes)            under DEK
8012        TAC key DTK (16 bytes)                       under DEK
8013        holder PIN, BCD padded with F (16 bytes)     under DEK
8014        maintenance key DAMK (16 bytes)              under DEK
==========  ===========================================  =========

DGIs with bit 15 set travel encrypted under the security domain's DEK; the
domain decrypts them before the purse sees them, as GlobalPlatform wants.
The PIN is padded to 16 bytes so that it is one DEK block in SCP02 and SCP03
alike. 0104, 0203, 8013 and 8014 are optional: without them a purse has no
file identifier (terminals reach it by AID only), the default PIN 123456 with
3 tries, and no APPLICATION BLOCK (no key to check its MAC with).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from applets import bcd
from applets.pboc.commands import DEFAULT_PIN
from applets.pboc.layouts import ISSUER_FILE, IssuerFile


@dataclass(frozen=True, slots=True)
class CardKey:
    """A diversified 16-byte card key with its version, as INITIALIZE reports it."""

    version: int
    key: bytes


@dataclass(frozen=True, slots=True)
class PursePersonalisation:
    """Everything written into a fresh purse instance (later: STORE DATA DGIs)."""

    issuer_file: IssuerFile
    holder_file: bytes
    purchase_keys: Mapping[int, CardKey]
    load_keys: Mapping[int, CardKey]
    tac_key: bytes
    max_balance: int = 100_000
    mac_tries: int = 3
    transit_records: tuple[bytes, ...] = ()
    file_id: int | None = None  # the DF's FID under the MF, for terminals that select by it
    pin: str = DEFAULT_PIN
    pin_tries: int = 3
    maintenance_key: bytes | None = None  # DAMK: the MAC of APPLICATION BLOCK


KEY_INDEX = 0x01
ISSUER, HOLDER, TRANSIT, FILE_ID = 0x0101, 0x0102, 0x0103, 0x0104
CONFIG, VERSIONS, PIN_TRIES = 0x0201, 0x0202, 0x0203
DPK, DLK, DTK, PIN, DAMK = 0x8010, 0x8011, 0x8012, 0x8013, 0x8014
REQUIRED = (ISSUER, HOLDER, CONFIG, VERSIONS, DPK, DLK, DTK)
TRANSIT_RECORD_SIZE = 48
PIN_DGI_SIZE = 16


def to_dgis(data: PursePersonalisation,
            encrypt: Callable[[bytes], bytes]) -> list[tuple[int, bytes]]:
    """The DGIs that personalise a purse; ``encrypt`` protects the keys (the DEK)."""
    dpk, dlk = data.purchase_keys[KEY_INDEX], data.load_keys[KEY_INDEX]
    return [
        (ISSUER, ISSUER_FILE.build(data.issuer_file)),
        (HOLDER, data.holder_file),
        (TRANSIT, b"".join(data.transit_records)),
        (CONFIG, data.max_balance.to_bytes(4) + bytes((data.mac_tries,))),
        (VERSIONS, bytes((dpk.version, dlk.version))),
        (DPK, encrypt(dpk.key)),
        (DLK, encrypt(dlk.key)),
        (DTK, encrypt(data.tac_key)),
        *([] if data.file_id is None else [(FILE_ID, data.file_id.to_bytes(2))]),
        (PIN_TRIES, bytes((data.pin_tries,))),
        (PIN, encrypt(bcd.encode_padded(data.pin, PIN_DGI_SIZE))),
        *([] if data.maintenance_key is None else [(DAMK, encrypt(data.maintenance_key))]),
    ]


def from_dgis(dgis: Mapping[int, bytes]) -> PursePersonalisation:
    """The purse contents from plain DGIs; ValueError names what is missing or wrong."""
    missing = [f"{d:04X}" for d in REQUIRED if d not in dgis]
    if missing:
        raise ValueError(f"personalisation lacks DGI {', '.join(missing)}")
    transit = dgis.get(TRANSIT, b"")
    config, versions = dgis[CONFIG], dgis[VERSIONS]
    if len(transit) % TRANSIT_RECORD_SIZE or len(config) != 5 or len(versions) != 2:
        raise ValueError("DGI 0103, 0201 or 0202 has the wrong length")
    if any(len(dgis[d]) != 16 for d in (DPK, DLK, DTK)):
        raise ValueError("purse keys have 16 bytes")
    file_id, tries, pin = dgis.get(FILE_ID), dgis.get(PIN_TRIES, b"\x03"), dgis.get(PIN)
    if (file_id is not None and len(file_id) != 2) or len(tries) != 1:
        raise ValueError("DGI 0104 or 0203 has the wrong length")
    if pin is not None and len(pin) != PIN_DGI_SIZE:
        raise ValueError(f"DGI 8013 has {PIN_DGI_SIZE} bytes")
    damk = dgis.get(DAMK)
    if damk is not None and len(damk) != 16:
        raise ValueError("DGI 8014 (the maintenance key) has 16 bytes")
    return PursePersonalisation(
        issuer_file=ISSUER_FILE.parse(dgis[ISSUER]),
        holder_file=dgis[HOLDER],
        purchase_keys={KEY_INDEX: CardKey(versions[0], dgis[DPK])},
        load_keys={KEY_INDEX: CardKey(versions[1], dgis[DLK])},
        tac_key=dgis[DTK],
        max_balance=int.from_bytes(config[:4]),
        mac_tries=config[4],
        transit_records=tuple(transit[i:i + TRANSIT_RECORD_SIZE]
                              for i in range(0, len(transit), TRANSIT_RECORD_SIZE)),
        file_id=None if file_id is None else int.from_bytes(file_id),
        pin=DEFAULT_PIN if pin is None else bcd.decode_padded(pin),
        pin_tries=tries[0],
        maintenance_key=damk,
    )
