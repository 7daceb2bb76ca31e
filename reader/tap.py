"""One tap end to end: run a terminal flow over a card's link and time it.

The outcome says what the rider sees (accepted, refused with a reason, or
an incomplete tap when the card left mid-transaction) and how long it took:
host time as measured and air time as modelled against the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from reader.errors import TransactionRefused, TransportError
from reader.flow import Flow, run
from reader.timing import DEADLINE_TRANSIT_S, AirInterface, TapTiming, model_tap
from reader.trace import Exchange
from reader.transport import Transport

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TapOutcome(Generic[T]):
    result: T | None
    refusal: str | None
    incomplete: str | None
    trace: tuple[Exchange, ...]
    timing: TapTiming

    @property
    def accepted(self) -> bool:
        return self.result is not None


def tap(link: Transport, flow: Flow[T], air: AirInterface | None = None,
        deadline_s: float = DEADLINE_TRANSIT_S) -> TapOutcome[T]:
    """Run ``flow`` over a card's ``link``; a faulty card answer propagates."""
    result: T | None = None
    refusal = incomplete = None
    try:
        result = run(flow, link)
    except TransactionRefused as refused:
        refusal = refused.reason
    except TransportError as lost:
        incomplete = str(lost)
    timing = model_tap(link.trace, air or AirInterface(), deadline_s=deadline_s)
    return TapOutcome(result, refusal, incomplete, tuple(link.trace), timing)
