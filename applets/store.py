"""The secure element's persistent memory, with all-or-nothing commits.

Why a journal: a command's writes (balance, counter, log record, transit
record) must land together, and power can fail between any two physical
writes. Like a card's commit buffer, a commit first writes every pending
value into a journal, then one commit mark, then the values to their homes,
then clears the mark. At power-up :meth:`Store.recover` rolls a marked
journal forward and drops an unmarked one. Each physical write is modelled
as atomic (an EEPROM page write); a tear falls between two of them.

``tear_after`` injects the tear: once that many physical writes have landed,
the next one raises :class:`PowerLoss` instead of writing.
"""

from __future__ import annotations

from collections.abc import Mapping

from applets.errors import PowerLoss

_JOURNAL = "~journal/"
_MARK = "~journal"


class Store:
    """Key → bytes cells plus the pending writes of the command being run."""

    def __init__(self, cells: Mapping[str, bytes] | None = None) -> None:
        self.cells: dict[str, bytes] = dict(cells or {})
        self._pending: dict[str, bytes | None] = {}
        self.writes = 0
        self.tear_after: int | None = None

    # -- reads and writes of the current command ---------------------------

    def get(self, key: str) -> bytes | None:
        if key in self._pending:
            return self._pending[key]
        return self.cells.get(key)

    def require(self, key: str) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(f"store has no cell {key!r}")
        return value

    def put(self, key: str, value: bytes) -> None:
        if key.startswith(_MARK):
            raise ValueError(f"{key!r} is reserved for the commit journal")
        self._pending[key] = bytes(value)

    def delete(self, key: str) -> None:
        self._pending[key] = None

    def keys(self, prefix: str = "") -> list[str]:
        """Live keys under ``prefix``, pending writes included, in sorted order."""
        live = {k for k in self.cells if k.startswith(prefix) and not k.startswith(_MARK)}
        for key, value in self._pending.items():
            if key.startswith(prefix):
                if value is None:
                    live.discard(key)
                else:
                    live.add(key)
        return sorted(live)

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    # -- transactions -------------------------------------------------------

    def commit(self) -> None:
        """Make every pending write persistent, atomically with respect to tears."""
        if not self._pending:
            return
        entries = list(self._pending.items())
        for i, (key, value) in enumerate(entries):
            self._write(f"{_JOURNAL}{i}", _journal_record(key, value))
        self._write(_MARK, str(len(entries)).encode())
        for key, value in entries:
            self._write(key, value)
        self._write(_MARK, None)
        self._pending.clear()
        for i in range(len(entries)):
            # Dead journal space, reused by the next commit: model bookkeeping,
            # not a physical write.
            del self.cells[f"{_JOURNAL}{i}"]

    def abort(self) -> None:
        """Forget the pending writes (the command failed)."""
        self._pending.clear()

    def recover(self) -> None:
        """Power-up: finish a marked commit or drop an unmarked one; forget RAM."""
        self._pending.clear()
        mark = self.cells.get(_MARK)
        if mark is not None:
            for i in range(int(mark)):
                self._write(*_parse_journal_record(self.cells[f"{_JOURNAL}{i}"]))
            self._write(_MARK, None)
        for key in [k for k in self.cells if k.startswith(_JOURNAL)]:
            del self.cells[key]

    def _write(self, key: str, value: bytes | None) -> None:
        if self.tear_after is not None and self.writes >= self.tear_after:
            raise PowerLoss(f"power cut before physical write {self.writes + 1} ({key})")
        self.writes += 1
        if value is None:
            self.cells.pop(key, None)
        else:
            self.cells[key] = value

    # -- images -------------------------------------------------------------

    def snapshot(self) -> dict[str, bytes]:
        """The persistent cells (what survives power-off), for images and tests."""
        return dict(self.cells)


def _journal_record(key: str, value: bytes | None) -> bytes:
    name = key.encode()
    return bytes((len(name),)) + name + (b"" if value is None else b"\x01" + value)


def _parse_journal_record(record: bytes) -> tuple[str, bytes | None]:
    end = 1 + record[0]
    key = record[1:end].decode()
    return key, (record[end + 1 :] if len(record) > end else None)
