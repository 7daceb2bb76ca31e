"""A terminal's outbox: every record it made, on its own disk before the rider has an answer,
and how far the back office has acknowledged it.

The outbox is one append-only file of JSON lines per terminal (``ID.jsonl``: a record, its
kind and the terminal's notes, :func:`line`), each append fsynced before the tap's answer
leaves the terminal. A crash can leave only a last line without its newline (a torn
append): it is no record, reading skips it and the next append cuts it off. ``ID.sent``
holds the byte offset up to which the stream has acknowledged the lines, replaced
atomically after each acknowledgement, so a terminal offline or killed sends the rest
later; what it sends twice carries the same message id (:func:`message_id`, the line's
digest) and the stream keeps it once, as the clearing books it once per card and counter.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from common.files import atomic_write
from reader.record import LoadRecord, PurchaseRecord, from_json, to_json

#: A line's ``record`` field: the kind of record it holds.
KINDS: dict[str, type[PurchaseRecord | LoadRecord]] = {"debit": PurchaseRecord, "load": LoadRecord}


class OutboxError(ValueError):
    """A line of an outbox is not a record for clearing; the message says where."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One whole line of an outbox and the offset just past it."""

    end: int
    line: bytes


def line(record: PurchaseRecord | LoadRecord) -> bytes:
    """A record as its outbox keeps it and the stream carries it: one JSON line, its kind
    first, the terminal's notes included."""
    kind = "load" if isinstance(record, LoadRecord) else "debit"
    return json.dumps({"record": kind, **to_json(record)}, separators=(",", ":")).encode() + b"\n"


def message_id(data: bytes) -> str:
    """The stream's deduplication id of a line: the same record sent twice is one message."""
    return hashlib.sha256(data.rstrip(b"\n")).hexdigest()[:32]


def document(data: bytes, where: str = "line") -> dict[str, Any]:
    """A line's JSON object; OutboxError otherwise."""
    try:
        parsed = json.loads(data)
    except ValueError as error:
        raise OutboxError(f"{where}: not JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise OutboxError(f"{where}: not a record (a JSON object)")
    return parsed


def record(parsed: dict[str, Any], where: str = "line") -> PurchaseRecord | LoadRecord | None:
    """The record of a line's JSON, without the terminal's notes; None for a line of a kind
    that is not for clearing."""
    kind = KINDS.get(parsed.get("record", "debit"))
    if kind is None:
        return None
    try:
        return from_json(kind, parsed)
    except ValueError as error:
        raise OutboxError(f"{where}: not a record for clearing ({error})") from None


class Outbox:
    """The outbox of the terminal ``terminal_id`` in ``directory``."""

    def __init__(self, directory: Path, terminal_id: bytes) -> None:
        self.terminal_id = terminal_id
        name = terminal_id.hex().upper()
        self.path = directory / f"{name}.jsonl"
        self._sent_path = directory / f"{name}.sent"

    def append(self, records: Sequence[PurchaseRecord | LoadRecord]) -> list[bytes]:
        """Keep ``records`` for good: appended whole, after cutting off a torn last line,
        and fsynced before this returns. The lines written."""
        if not records:
            return []
        lines = [line(item) for item in records]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(max(0, size - 1))
                if handle.read(1) != b"\n":
                    handle.truncate(self._whole(handle))
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        return lines

    @staticmethod
    def _whole(handle: BinaryIO) -> int:
        """The length of the whole lines of an open outbox (what is left after a torn line)."""
        handle.seek(0)
        content = handle.read()
        return content.rfind(b"\n") + 1

    def entries(self, start: int = 0) -> Iterator[Entry]:
        """The whole lines from byte ``start`` on, a torn last line left out."""
        return entries(self.path, start)

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every line's JSON object with where it is (file and line number)."""
        for number, entry in enumerate(self.entries(), 1):
            where = f"{self.path}, line {number}"
            yield where, document(entry.line, where)

    @property
    def sent(self) -> int:
        """The offset up to which the stream has acknowledged this outbox."""
        if not self._sent_path.exists():
            return 0
        try:
            return int(json.loads(self._sent_path.read_text())["offset"])
        except (ValueError, KeyError, TypeError) as error:
            raise OutboxError(f"{self._sent_path} is damaged ({error}): delete it to send the "
                              f"outbox again (the stream keeps each record once)") from None

    def acknowledged(self, offset: int) -> None:
        """The stream has every line up to ``offset``."""
        atomic_write(self._sent_path, json.dumps({"offset": offset}).encode())

    def unsent(self) -> list[Entry]:
        return list(self.entries(self.sent))


def outboxes(directory: Path) -> list[Outbox]:
    """Every terminal's outbox in ``directory``, in terminal order."""
    return [Outbox(directory, bytes.fromhex(path.stem))
            for path in sorted(directory.glob("*.jsonl"))]


def entries(path: Path, start: int = 0) -> Iterator[Entry]:
    """The whole lines of a file of outbox lines (an outbox, or a day saved by ``koala city
    replay --save``) from byte ``start`` on, a torn last line left out."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        handle.seek(start)
        offset = start
        for data in handle:
            if not data.endswith(b"\n"):
                return
            offset += len(data)
            yield Entry(offset, data)
