"""The records terminals keep for clearing, declared once: their fields, each field's bounds,
and their JSON.

A gate or a validator makes a :class:`PurchaseRecord` (its :class:`reader.terminal.Debit`
is one, with the terminal's own notes beside it), a station's load machine a
:class:`LoadRecord` (:class:`reader.load.Load`), a QuickPass POS an :class:`EcashPurchase`.
The terminals' files keep them as JSON (:func:`to_json`), ``koala issuer clear`` reads them
back (:func:`from_json`) and posts that JSON, and the issuer's API takes it: its request
bodies are derived from the fields and bounds below (``issuer.http.models``), and what they
admit is read with :func:`from_json` into the records clearing verifies (``issuer.clearing``).

A field's type says its JSON form: ``bytes`` is hex (written in upper case, read in either),
a ``Mapping[int, bytes]`` an object of hex tags to hex values, ``int``, ``bool`` and ``str``
are themselves. A field's bound (:class:`Hex`, :class:`Int`, :class:`Text`, :class:`Tags`)
is its ``Annotated`` metadata: what the API admits. :func:`from_json` converts and checks the
JSON types only; the bounds are the API's to enforce (a record a terminal made is within
them, and one from anywhere else reaches the issuer only through its API).
"""

from __future__ import annotations

import hmac
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, TypeVar

from applets.pboc import crypto
from applets.pboc.layouts import TxType

#: Amounts as the issuer's database stores them (PostgreSQL integer), fen.
MAX_FEN = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Hex:
    """Bytes, hex in JSON: ``size`` bytes exactly, or at most ``max_size``."""

    size: int | None = None
    max_size: int | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Int:
    """An integer from ``low`` to ``high``; JSON may leave it out when it has a ``default``."""

    low: int
    high: int
    description: str | None = None
    default: int | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """A string matching ``pattern``, of at most ``max_length`` characters; JSON may leave it
    out when it has a ``default``."""

    pattern: str | None = None
    max_length: int | None = None
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Tags:
    """BER-TLV tags (one or two bytes) to values of at most ``max_size`` bytes, at most
    ``max_items`` of them; hex both, in JSON."""

    max_items: int
    max_size: int
    description: str | None = None


Bound = Hex | Int | Text | Tags

SERIAL = Hex(10)  # the card's application serial number (EF 0x15)
TERMINAL = Hex(6)
DATE = Hex(4, description="YYYYMMDD, BCD hex")
TIME = Hex(3, description="hhmmss, BCD hex")
TAC = Hex(4)


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """A purse purchase as the card proved it: its TAC covers the amount, the type, the
    terminal, the terminal's sequence number, date and time; the issuer books it once per
    card and offline counter."""

    app_serial: Annotated[bytes, SERIAL]
    tx_type: Annotated[int, Int(0, 255)]
    amount: Annotated[int, Int(0, MAX_FEN, "fen")]
    card_counter: Annotated[int, Int(0, 0xFFFF)]
    terminal_id: Annotated[bytes, TERMINAL]
    terminal_seq: Annotated[int, Int(0, 2**32 - 1)]
    date: Annotated[bytes, DATE]
    time: Annotated[bytes, TIME]
    tac: Annotated[bytes, TAC]


@dataclass(frozen=True, slots=True)
class LoadRecord:
    """A cash load as the card proved it: its load TAC covers the new balance, the online
    counter, the amount, the machine and its date and time; booked once per card and online
    counter."""

    app_serial: Annotated[bytes, SERIAL]
    amount: Annotated[int, Int(1, MAX_FEN, "fen")]
    balance_after: Annotated[int, Int(0, MAX_FEN, "fen")]
    card_counter: Annotated[int, Int(0, 0xFFFF, "the card's online counter")]
    terminal_id: Annotated[bytes, TERMINAL]
    date: Annotated[bytes, DATE]
    time: Annotated[bytes, TIME]
    tac: Annotated[bytes, TAC]


@dataclass(frozen=True, slots=True)
class EcashPurchase:
    """A QuickPass purchase with the card's cryptogram: for the acquirer to authorise (ARQC)
    or to clear (TC); the issuer recomputes the cryptogram over ``data``."""

    pan: Annotated[str, Text(pattern=r"^[0-9]{12,19}$")]
    psn: Annotated[int, Int(0, 99, default=0)]
    amount: Annotated[int, Int(1, MAX_FEN, "fen")]
    atc: Annotated[int, Int(0, 0xFFFF)]
    cryptogram: Annotated[bytes, Hex(8)]
    cid: Annotated[int, Int(0, 255, "64 (TC) for an offline approval")]
    iad: Annotated[bytes, Hex(max_size=32)]
    #: the terminal data the card's AC covers, as sent to it
    data: Annotated[Mapping[int, bytes], Tags(32, 32, "the terminal data the card's cryptogram "
                                                      "covers, by tag (hex)")]
    merchant: Annotated[str, Text(max_length=40, default="")]


def purchase_proven(record: PurchaseRecord, dtk: bytes) -> bool:
    """Whether the card's TAC holds for ``record`` under the card's TAC key ``dtk``: the
    one rule the issuer and the clearing centre check a purchase by."""
    terminal = crypto.Terminal(record.terminal_id, record.date, record.time)
    expected = crypto.purchase_tac(dtk, record.amount, record.tx_type, terminal, record.terminal_seq)
    return hmac.compare_digest(expected, record.tac)


def load_proven(record: LoadRecord, dtk: bytes) -> bool:
    """Whether the card's load TAC holds for the cash load ``record`` under ``dtk``."""
    terminal = crypto.Terminal(record.terminal_id, record.date, record.time)
    expected = crypto.load_tac(dtk, record.balance_after, record.card_counter, record.amount,
                               TxType.EP_LOAD, terminal)
    return record.amount > 0 and hmac.compare_digest(expected, record.tac)


Record = PurchaseRecord | LoadRecord | EcashPurchase
R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a record: its name, its type without the bound, its bound, and whether
    JSON may leave it out (its default, when it has one)."""

    name: str
    type: Any
    bound: Bound | None
    default: Any = MISSING


def spec(kind: type[Any]) -> tuple[FieldSpec, ...]:
    """The fields of a record class (a subclass's own fields after its record's)."""
    known = _SPECS.get(kind)
    if known is not None:
        return known
    hints = typing.get_type_hints(kind, include_extras=True)
    specs = []
    for field in fields(kind):
        hint, bound = hints[field.name], None
        if typing.get_origin(hint) is Annotated:
            hint, *extras = typing.get_args(hint)
            bound = next((extra for extra in extras if isinstance(extra, Bound)), None)
        default = field.default
        if isinstance(bound, Int | Text) and bound.default is not None:
            default = bound.default
        specs.append(FieldSpec(field.name, hint, bound, default))
    _SPECS[kind] = tuple(specs)
    return _SPECS[kind]


_SPECS: dict[type[Any], tuple[FieldSpec, ...]] = {}


def to_json(record: Record, kind: type[Record] | None = None) -> dict[str, Any]:
    """``record`` as JSON: the fields of ``kind`` (one of the record's classes: the record
    alone, without a terminal's notes), or of its own class."""
    return {field.name: _out(getattr(record, field.name))
            for field in spec(kind or type(record))}


def from_json(kind: type[R], data: Mapping[str, Any]) -> R:
    """A ``kind`` from its JSON; keys that are not its fields (a terminal file's kind of
    record, the terminal's own notes) are left aside. ValueError names the first field
    that is missing or not of its JSON type."""
    values = {}
    for field in spec(kind):
        if field.name not in data:
            if field.default is MISSING:
                raise ValueError(f"{field.name}: missing")
            values[field.name] = field.default
            continue
        try:
            values[field.name] = _in(field.type, data[field.name])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{field.name}: {error}") from None
    return kind(**values)


def _out(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, Mapping):
        return {_tag(tag): item.hex().upper() for tag, item in value.items()}
    return value


def _tag(tag: int) -> str:
    """A tag in its bytes' hex: 9A, 9F21 (and 0100, not 100, which is no tag's bytes)."""
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8)).hex().upper()


def _in(kind: Any, value: Any) -> Any:
    if kind is bytes:
        return bytes.fromhex(_of(str, value))
    if typing.get_origin(kind) is Mapping:
        return {int(_of(str, tag), 16): bytes.fromhex(_of(str, item))
                for tag, item in _of(dict, value).items()}
    if kind is int and isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return _of(kind, value)


def _of(kind: type[Any], value: Any) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{value!r} is not a JSON {_NAMES.get(kind, kind.__name__)}")
    return value


_NAMES = {str: "string", int: "integer", bool: "boolean", dict: "object"}
