"""The API's request and response bodies (pydantic), and their translation from the service's
results.

The clearing bodies are not written here: they are derived, field for field, from the records
the terminals make (:mod:`reader.record`), with the bounds those declare (:func:`record_body`).

(No ``from __future__ import annotations``: pydantic and FastAPI read these at run time.)
"""

import uuid
from dataclasses import MISSING
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from issuer.clearing import Cleared
from issuer.orders import Relay
from issuer.service import CardView, OrderView
from reader.record import (
    SERIAL,
    EcashPurchase,
    Hex,
    Int,
    LoadRecord,
    PurchaseRecord,
    Record,
    Tags,
    Text,
    spec,
)

HEX = r"^([0-9A-Fa-f]{2})*$"
Tag = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}){1,2}$")]


def hex_bounds(bound: Hex) -> dict[str, Any]:
    """A :class:`reader.record.Hex` bound as the constraints of a hex string (Field, Path)."""
    return {"pattern": HEX, "min_length": None if bound.size is None else 2 * bound.size,
            "max_length": 2 * (bound.size or bound.max_size or 0) or None,
            "description": bound.description}


def hex_field(bound: Hex, default: Any = ...) -> Any:
    """A body's hex string field within ``bound``."""
    return Field(default, **hex_bounds(bound))


class StrictBody(BaseModel):
    """A request body, read strictly: JSON true is not the integer 1, "5" is not 5, and a
    field the API does not know is refused, not ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Problem(BaseModel):
    detail: str


#: The refusals a route may answer, each a :class:`Problem`.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 503)}


class BandIn(StrictBody):
    cplc: str = Field(pattern=HEX, min_length=84, max_length=84, description="CPLC, 42 bytes hex")
    uid: str = Field(pattern=HEX, min_length=8, max_length=20)
    isd_key_set: str = Field("test", max_length=64, description=(
        "the key set of the band's card manager: 'test' (GP test keys, development bands) or "
        "the name of the band maker's masters in the issuer's key store (KDF3 per band)"))


class BandOut(BaseModel):
    band_id: int
    device_token: str
    order_id: int | None = Field(description=(
        "the order that gives the band's card manager the issuer's keys in place of the test "
        "keys (none when it has other keys)"))


class CardIn(StrictBody):
    product: str = Field(description="a product name from /v1/products, or ecash (the bank's)")
    app_serial: str = hex_field(SERIAL)


class RegisteredOut(BaseModel):
    order_id: int | None = Field(description=(
        "the order that takes the card over at the balance it proves when relayed (none for a "
        "card this issuer issued)"))
    product: str
    app_serial: str


class CardOut(BaseModel):
    product: str
    aid: str
    app_serial: str
    status: str
    balance: int = Field(description="the issuer's view, fen")

    @classmethod
    def of(cls, card: CardView) -> "CardOut":
        return cls(product=card.product, aid=card.aid, app_serial=card.app_serial,
                   status=card.status, balance=card.balance)


class FundingIn(StrictBody):
    amount: int = Field(gt=0, le=10_000_000, description="fen")


class TopupIn(StrictBody):
    app_serial: str = hex_field(SERIAL)
    amount: int = Field(gt=0, le=100_000, description="fen")


class IssueIn(StrictBody):
    product: str = Field(description="a product name from /v1/products")


class LostIn(StrictBody):
    new_band_id: int = Field(ge=1, le=2**31 - 1, description="the band the balances move to")


def record_body(kind: type[Record], name: str, doc: str) -> type[StrictBody]:
    """The request body of a record (:mod:`reader.record`), field for field, each bounded as
    the record declares it: hex strings for bytes, an object of hex tags for a tag map."""
    definitions: dict[str, Any] = {}
    for field in spec(kind):
        default = ... if field.default is MISSING else field.default
        bound = field.bound
        if isinstance(bound, Hex):
            definitions[field.name] = (str, hex_field(bound, default))
        elif isinstance(bound, Int):
            definitions[field.name] = (int, Field(default, ge=bound.low, le=bound.high,
                                                  description=bound.description))
        elif isinstance(bound, Text):
            definitions[field.name] = (str, Field(default, pattern=bound.pattern,
                                                  max_length=bound.max_length))
        elif isinstance(bound, Tags):
            definitions[field.name] = (
                dict[Tag, Annotated[str, Field(pattern=HEX, max_length=2 * bound.max_size)]],
                Field(default, max_length=bound.max_items, description=bound.description))
        else:
            raise TypeError(f"{kind.__name__}.{field.name} has no bound for the API")
    return create_model(name, __base__=StrictBody, __doc__=doc, **definitions)


if TYPE_CHECKING:  # to mypy a record's body is any StrictBody: its fields are made at run time
    PurchaseIn = StrictBody
    LoadIn = StrictBody
    EcashPurchaseIn = StrictBody
else:
    PurchaseIn = record_body(PurchaseRecord, "PurchaseIn", (
        "A terminal's purchase record (as ``koala`` terminals keep them for clearing)."))
    EcashPurchaseIn = record_body(EcashPurchase, "EcashPurchaseIn", (
        "A QuickPass POS's record of an offline e-cash purchase, with the TC that proves it."))
    LoadIn = record_body(LoadRecord, "LoadIn", (
        "A station load machine's record of a cash load, with the TAC that proves it."))


class ClearedOut(BaseModel):
    booked: int
    duplicates: int
    free: int = Field(description="proven purchases of nothing (metro entries)")
    opening: int = Field(0, description=(
        "proven records from before the card came under the issuer: in its opening balance"))
    refused: list[str] = Field(description="records not booked, and why")

    @classmethod
    def of(cls, result: Cleared) -> "ClearedOut":
        return cls(booked=result.booked, duplicates=result.duplicates, free=result.free,
                   opening=result.opening, refused=result.refused)


class RelayOut(BaseModel):
    session_id: uuid.UUID
    step: int
    commands: list[str] = Field(description=(
        "the next C-APDUs (hex) for the band, run in order until one answers other than 9000; "
        "empty: the order is over"))
    state: str

    @classmethod
    def of(cls, relay: Relay) -> "RelayOut":
        return cls(session_id=relay.session_id, step=relay.step,
                   commands=[command.hex().upper() for command in relay.commands],
                   state=relay.state.value)


class OrderOut(BaseModel):
    order_id: int
    kind: str
    state: str
    amount: int = Field(description="fen: a top-up's amount, a cancelled card's refund")
    app_serial: str | None
    last_error: str | None = None
    relay: RelayOut | None = Field(default=None, description=(
        "a relay session opened with the order (the companion's ordering routes), as if by "
        "POST .../orders/{order_id}/relay"))

    @classmethod
    def of(cls, order: OrderView) -> "OrderOut":
        return cls(order_id=order.order_id, kind=order.kind, state=order.state,
                   amount=order.amount, app_serial=order.app_serial, last_error=order.last_error,
                   relay=None if order.relay is None else RelayOut.of(order.relay))


RApdu = Annotated[str, Field(pattern=HEX, min_length=4, max_length=1024)]


class FoundOut(BaseModel):
    device_token: str
    orders: list[OrderOut] = Field(description="the unlocks to relay to the band")


class RelayIn(StrictBody):
    step: int = Field(ge=0, le=1000)
    responses: list[RApdu] = Field(min_length=1, max_length=16, description=(
        "the band's answers to the step's commands, in order: all of them, or those up to the "
        "first other than 9000 or up to a broken link"))
