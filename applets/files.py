"""Elementary files of an application (ISO/IEC 7816-4 clause 7).

Each application (a DF named by its AID) owns a few EFs, addressed by file
identifier or short file identifier (SFI). Their structure is fixed when the
application is personalised; their contents live in the transactional store,
so a file update commits or rolls back with the rest of its command.

The application's DF may have a file identifier under the MF (personalised,
see :meth:`FileSystem.set_file_id`), by which older terminals select it;
its EFs answer SELECT with their control parameters (:meth:`FileSystem.
control_parameters`, ISO/IEC 7816-4 5.3.3).

Record addressing follows ISO/IEC 7816-4 7.3.3: P2 b8-b4 carry the SFI (0 is
the current EF), b3-b1 = 100 says P1 is a record number, 000 says P1 is a
record identifier (the first byte of the record, as in PBOC's compound
application file). A cyclic file's record 1 is the most recently written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from applets import tlv
from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.iso7816 import BinaryReference, Ins, RecordReference
from applets.selection import (
    DATA_CODING,
    DESCRIPTOR_CYCLIC,
    DESCRIPTOR_LINEAR_FIXED,
    DESCRIPTOR_TRANSPARENT,
    FID_SIZE,
    FILE_DESCRIPTOR,
    FILE_ID,
    FILE_SIZE,
    MF_FID,
)
from applets.store import Store
from applets.sw import SW


class EFKind(Enum):
    TRANSPARENT = "transparent"
    LINEAR_FIXED = "linear-fixed"
    CYCLIC = "cyclic"


_DESCRIPTORS = {EFKind.TRANSPARENT: DESCRIPTOR_TRANSPARENT,
                EFKind.LINEAR_FIXED: DESCRIPTOR_LINEAR_FIXED, EFKind.CYCLIC: DESCRIPTOR_CYCLIC}
#: Identifiers no DF of an application may take: the MF's, the current DF's in a path
#: (3FFF) and the RFU FFFF (ISO/IEC 7816-4 5.3.1.1).
RESERVED_FIDS = frozenset((MF_FID, 0x3FFF, 0xFFFF))


class Access(Enum):
    """Who may use a file: anyone, or nobody from outside the application."""

    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class EFSpec:
    """The shape of one EF: ``size`` bytes, or ``records`` of ``record_length``."""

    fid: int
    sfi: int | None
    kind: EFKind
    size: int = 0
    record_length: int = 0
    records: int = 0
    read: Access = Access.ALWAYS
    update: Access = Access.NEVER

    @property
    def is_record(self) -> bool:
        return self.kind is not EFKind.TRANSPARENT


class FileSystem:
    """The EFs of one application, over its namespace in the store."""

    def __init__(self, store: Store, prefix: str, specs: tuple[EFSpec, ...]) -> None:
        self._store = store
        self._prefix = prefix
        self._by_fid = {spec.fid: spec for spec in specs}
        self._by_sfi = {spec.sfi: spec for spec in specs if spec.sfi is not None}
        self.current: EFSpec | None = None

    # -- addressing ----------------------------------------------------------

    def by_sfi(self, sfi: int) -> EFSpec:
        if sfi == 0:
            if self.current is None:
                raise CardError(SW.COMMAND_NOT_ALLOWED_NO_EF, "no current EF")
            return self.current
        spec = self._by_sfi.get(sfi)
        if spec is None:
            raise CardError(SW.FILE_NOT_FOUND, f"no EF with SFI {sfi:02X}")
        return spec

    def select(self, fid: int) -> EFSpec:
        spec = self._by_fid.get(fid)
        if spec is None:
            raise CardError(SW.FILE_NOT_FOUND, f"no EF {fid:04X}")
        self.current = spec
        return spec

    def has(self, fid: int) -> bool:
        return fid in self._by_fid

    @staticmethod
    def control_parameters(spec: EFSpec) -> bytes:
        """The FCP data objects of ``spec``: its size in bytes, its file descriptor (a record
        file's with record size and count) and identifier. No tag 88: the SFI of each EF is
        the low 5 bits of its FID (0015 is SFI 15), which is what its absence says."""
        descriptor = bytes((_DESCRIPTORS[spec.kind],))
        if spec.is_record:
            descriptor += bytes((DATA_CODING,)) + spec.record_length.to_bytes(2) + bytes(
                (spec.records,))
        size = spec.size if not spec.is_record else spec.record_length * spec.records
        return b"".join((tlv.encode(FILE_SIZE, size.to_bytes(2)),
                         tlv.encode(FILE_DESCRIPTOR, descriptor),
                         tlv.encode(FILE_ID, spec.fid.to_bytes(FID_SIZE))))

    # -- the DF's own identifier ------------------------------------------------------

    @property
    def file_id(self) -> int | None:
        """The DF's file identifier under the MF, None if it was given none."""
        raw = self._store.get(f"{self._prefix}/df")
        return None if raw is None else int.from_bytes(raw)

    def set_file_id(self, fid: int) -> None:
        """Give the DF file identifier ``fid`` (personalisation); 6A80 for an identifier ISO
        reserves or one of its own EFs has."""
        if not 0 <= fid <= 0xFFFF or fid in RESERVED_FIDS or fid in self._by_fid:
            raise CardError(SW.WRONG_DATA, f"{fid:04X} cannot identify an application's DF")
        self._store.put(f"{self._prefix}/df", fid.to_bytes(FID_SIZE))

    # -- contents ------------------------------------------------------------

    def _key(self, spec: EFSpec, slot: int | None = None) -> str:
        base = f"{self._prefix}/ef/{spec.fid:04X}"
        return base if slot is None else f"{base}/{slot}"

    def binary(self, spec: EFSpec) -> bytes:
        return self._store.get(self._key(spec)) or bytes(spec.size)

    def write_binary(self, spec: EFSpec, offset: int, data: bytes) -> None:
        content = self.binary(spec)
        if offset + len(data) > spec.size:
            raise CardError(SW.WRONG_P1_P2, f"{len(data)} bytes at {offset} overrun EF {spec.fid:04X}")
        self._store.put(self._key(spec), content[:offset] + data + content[offset + len(data):])

    def _slot(self, spec: EFSpec, number: int) -> int:
        """The storage slot of record ``number`` (1-based, as the terminal counts)."""
        if spec.kind is EFKind.CYCLIC:
            head = self._head(spec)
            return (head - (number - 1)) % spec.records
        return number - 1

    def _head(self, spec: EFSpec) -> int:
        raw = self._store.get(self._key(spec, -1))
        return raw[0] if raw else spec.records - 1

    def record_count(self, spec: EFSpec) -> int:
        if spec.kind is EFKind.CYCLIC:
            raw = self._store.get(self._key(spec, -1))
            return raw[1] if raw else 0
        return spec.records

    def record(self, spec: EFSpec, number: int) -> bytes:
        if not 1 <= number <= self.record_count(spec):
            raise CardError(SW.RECORD_NOT_FOUND, f"EF {spec.fid:04X} has no record {number}")
        stored = self._store.get(self._key(spec, self._slot(spec, number)))
        return stored if stored is not None else bytes(spec.record_length)

    def find_record(self, spec: EFSpec, identifier: int) -> int:
        """Number of the first record whose first byte is ``identifier``."""
        for number in range(1, self.record_count(spec) + 1):
            if self.record(spec, number)[:1] == bytes((identifier,)):
                return number
        raise CardError(SW.RECORD_NOT_FOUND, f"EF {spec.fid:04X} has no record {identifier:02X}")

    def write_record(self, spec: EFSpec, number: int, data: bytes) -> None:
        if len(data) != spec.record_length:
            raise CardError(SW.WRONG_LENGTH, f"records of EF {spec.fid:04X} have "
                                             f"{spec.record_length} bytes, got {len(data)}")
        if not 1 <= number <= self.record_count(spec):
            raise CardError(SW.RECORD_NOT_FOUND, f"EF {spec.fid:04X} has no record {number}")
        self._store.put(self._key(spec, self._slot(spec, number)), data)

    def append_record(self, spec: EFSpec, data: bytes) -> None:
        """Write a new record 1 of a cyclic file, pushing the oldest out."""
        if spec.kind is not EFKind.CYCLIC:
            raise CardError(SW.COMMAND_INCOMPATIBLE_WITH_FILE, f"EF {spec.fid:04X} is not cyclic")
        if len(data) != spec.record_length:
            raise CardError(SW.WRONG_LENGTH, f"records of EF {spec.fid:04X} have "
                                             f"{spec.record_length} bytes, got {len(data)}")
        head = (self._head(spec) + 1) % spec.records
        count = min(self.record_count(spec) + 1, spec.records)
        self._store.put(self._key(spec, head), data)
        self._store.put(self._key(spec, -1), bytes((head, count)))

    # -- ISO/IEC 7816-4 commands -----------------------------------------------

    def handle(self, apdu: CommandAPDU) -> bytes:
        """READ BINARY, READ RECORD, UPDATE BINARY, UPDATE RECORD, APPEND RECORD."""
        ins = apdu.ins
        if ins == Ins.READ_BINARY:
            return self._read_binary(apdu)
        if ins == Ins.UPDATE_BINARY:
            self._update_binary(apdu)
            return b""
        if ins in (Ins.READ_RECORD, Ins.UPDATE_RECORD, Ins.APPEND_RECORD):
            return self._record_command(apdu)
        raise CardError(SW.INS_NOT_SUPPORTED)

    def _binary_target(self, apdu: CommandAPDU) -> tuple[EFSpec, int]:
        reference = BinaryReference.parse(apdu)
        offset = reference.offset
        if reference.sfi is not None:
            spec = self.by_sfi(reference.sfi)
            self.current = spec
        else:
            spec = self.by_sfi(0)
        if spec.is_record:
            raise CardError(SW.COMMAND_INCOMPATIBLE_WITH_FILE, f"EF {spec.fid:04X} is a record file")
        if offset > spec.size:
            raise CardError(SW.WRONG_P1_P2, f"offset {offset} beyond EF {spec.fid:04X}")
        return spec, offset

    def _read_binary(self, apdu: CommandAPDU) -> bytes:
        if apdu.data:
            raise CardError(SW.WRONG_LENGTH, "READ BINARY takes no data")
        spec, offset = self._binary_target(apdu)
        _check(spec.read, spec)
        want = apdu.ne or 256
        return self.binary(spec)[offset : offset + want]

    def _update_binary(self, apdu: CommandAPDU) -> None:
        spec, offset = self._binary_target(apdu)
        _check(spec.update, spec)
        if not apdu.data:
            raise CardError(SW.WRONG_LENGTH, "UPDATE BINARY needs data")
        self.write_binary(spec, offset, apdu.data)

    def _record_command(self, apdu: CommandAPDU) -> bytes:
        reference = RecordReference.parse(apdu)
        spec = self.by_sfi(reference.sfi)
        if not spec.is_record:
            raise CardError(SW.COMMAND_INCOMPATIBLE_WITH_FILE, f"EF {spec.fid:04X} is transparent")
        self.current = spec
        if apdu.ins == Ins.APPEND_RECORD:
            if apdu.p1 != 0 or reference.mode != 0:
                raise CardError(SW.INCORRECT_P1_P2, "APPEND RECORD takes P1=00, P2 b3-b1=000")
            _check(spec.update, spec)
            self.append_record(spec, apdu.data)
            return b""
        if reference.number is not None:
            number = reference.number
        elif reference.identifier is not None:
            number = self.find_record(spec, reference.identifier)
        else:
            raise CardError(SW.INCORRECT_P1_P2, f"record addressing P1={apdu.p1:02X} "
                                                f"mode={reference.mode:03b} is not supported")
        if apdu.ins == Ins.READ_RECORD:
            if apdu.data:
                raise CardError(SW.WRONG_LENGTH, "READ RECORD takes no data")
            _check(spec.read, spec)
            return self.record(spec, number)
        _check(spec.update, spec)
        self.write_record(spec, number, apdu.data)
        return b""


def _check(access: Access, spec: EFSpec) -> None:
    if access is Access.NEVER:
        raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, f"EF {spec.fid:04X} forbids this access")
