"""What the access issuer writes into an access card: DGIs 0101-0103 and 8101, checked on both
sides (the issuer that builds them, the card that takes them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from applets import bcd
from applets.access.wire import DEFAULT_TRIES, MAX_PERMISSIONS, MAX_TRIES, PERMISSION, Permission
from applets.crypto import access as crypto
from applets.crypto.scp03 import Prf

CARD_ID, TRIES, PERMISSIONS, KEY = 0x0101, 0x0102, 0x0103, 0x8101
REQUIRED = (CARD_ID, TRIES, PERMISSIONS, KEY)
UPDATABLE = (TRIES, PERMISSIONS)


# -- personalisation ------------------------------------------------------------------


def _check_date(date: bytes, what: str) -> None:
    try:
        bcd.to_datetime(date, bytes(3))
    except ValueError:
        raise ValueError(f"{what} {date.hex().upper()} is not a BCD date YYYYMMDD") from None


def _check_permissions(permissions: tuple[Permission, ...]) -> None:
    if len(permissions) > MAX_PERMISSIONS:
        raise ValueError(f"a card holds at most {MAX_PERMISSIONS} permissions, "
                         f"got {len(permissions)}")
    doors = [p.door_id for p in permissions]
    if len(set(doors)) != len(doors):
        raise ValueError("a door appears twice in the permissions")
    for permission in permissions:
        PERMISSION.build(permission)  # door id and field sizes
        _check_date(permission.valid_from, "valid-from date")
        _check_date(permission.valid_until, "valid-until date")
        if permission.valid_from > permission.valid_until:
            raise ValueError(f"door {permission.door_id:08X}: the window ends before it starts")


def _check_tries(tries: int) -> None:
    if not 1 <= tries <= MAX_TRIES:
        raise ValueError(f"authentication tries are 1 to {MAX_TRIES}, got {tries}")


@dataclass(frozen=True, slots=True)
class AccessPersonalisation:
    """What the access issuer writes into a fresh card; ValueError if it cannot be."""

    card_id: bytes
    key: bytes
    permissions: tuple[Permission, ...]
    tries: int = DEFAULT_TRIES

    def __post_init__(self) -> None:
        if len(self.card_id) != crypto.CARD_ID_SIZE:
            raise ValueError(f"a card id has {crypto.CARD_ID_SIZE} bytes, got {len(self.card_id)}")
        if len(self.key) != crypto.KEY_SIZE:
            raise ValueError(f"the card key is AES-128, 16 bytes, got {len(self.key)}")
        _check_tries(self.tries)
        _check_permissions(self.permissions)

    @classmethod
    def for_site(cls, site_master: bytes | Prf, card_id: bytes,
                 permissions: tuple[Permission, ...], tries: int = DEFAULT_TRIES,
                 ) -> AccessPersonalisation:
        """A card of the site whose doors hold ``site_master``: its key diversified by card id."""
        return cls(card_id, crypto.card_key(site_master, card_id), permissions, tries)


@dataclass(frozen=True, slots=True)
class AccessUpdate:
    """What the issuer may change on a personalised card; None leaves a part as it is."""

    permissions: tuple[Permission, ...] | None = None
    tries: int | None = None


def _permission_records(data: bytes) -> tuple[Permission, ...]:
    size = PERMISSION.size
    if len(data) % size:
        raise ValueError(f"DGI {PERMISSIONS:04X} holds whole {size}-byte permission records")
    return tuple(PERMISSION.parse(data[i:i + size]) for i in range(0, len(data), size))


def to_dgis(data: AccessPersonalisation,
            encrypt: Callable[[bytes], bytes]) -> list[tuple[int, bytes]]:
    """The DGIs that personalise a card; ``encrypt`` protects the key (the DEK)."""
    return [
        (CARD_ID, data.card_id),
        (TRIES, bytes((data.tries,))),
        (PERMISSIONS, b"".join(PERMISSION.build(p) for p in data.permissions)),
        (KEY, encrypt(data.key)),
    ]


def update_dgis(update: AccessUpdate) -> list[tuple[int, bytes]]:
    """The DGIs that change a personalised card (nothing secret: no DEK needed)."""
    dgis = []
    if update.tries is not None:
        dgis.append((TRIES, bytes((update.tries,))))
    if update.permissions is not None:
        dgis.append((PERMISSIONS, b"".join(PERMISSION.build(p) for p in update.permissions)))
    return dgis


def _unknown(dgis: Mapping[int, bytes], allowed: tuple[int, ...]) -> None:
    unknown = [f"{d:04X}" for d in dgis if d not in allowed]
    if unknown:
        raise ValueError(f"DGI {', '.join(unknown)} is not for this card now")


def _tries(value: bytes) -> int:
    if len(value) != 1:
        raise ValueError(f"DGI {TRIES:04X} is one byte")
    _check_tries(value[0])
    return value[0]


def from_dgis(dgis: Mapping[int, bytes]) -> AccessPersonalisation:
    """The card's contents from plain DGIs; ValueError names what is missing or wrong."""
    missing = [f"{d:04X}" for d in REQUIRED if d not in dgis]
    if missing:
        raise ValueError(f"personalisation lacks DGI {', '.join(missing)}")
    _unknown(dgis, REQUIRED)
    return AccessPersonalisation(dgis[CARD_ID], dgis[KEY], _permission_records(dgis[PERMISSIONS]),
                                 _tries(dgis[TRIES]))


def update_from_dgis(dgis: Mapping[int, bytes]) -> AccessUpdate:
    _unknown(dgis, UPDATABLE)
    permissions = _permission_records(dgis[PERMISSIONS]) if PERMISSIONS in dgis else None
    if permissions is not None:
        _check_permissions(permissions)
    return AccessUpdate(permissions, _tries(dgis[TRIES]) if TRIES in dgis else None)


