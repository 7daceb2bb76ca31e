"""Terminal transactions as generators, independent of any transport.

A flow yields command APDUs and receives response APDUs; its return value
is the transaction's result. :func:`run` drives a flow over a transport; a
test can drive it by hand. Helpers here turn status words into the reader's
errors once, so transactions read as the standard describes them.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

from applets.apdu import CommandAPDU, ResponseAPDU
from applets.layout import Layout, LayoutError
from applets.sw import SW
from reader.errors import CardProtocolError, TransactionRefused
from reader.transport import Transport

T = TypeVar("T")
R = TypeVar("R")
Flow = Generator[CommandAPDU, ResponseAPDU, T]


def run(flow: Flow[T], transport: Transport) -> T:
    """Drive ``flow`` to completion over ``transport``."""
    try:
        command = next(flow)
        while True:
            raw = transport.transmit(command.encode())
            try:
                response = ResponseAPDU.parse(raw)
            except ValueError as exc:
                raise CardProtocolError(f"{command!r}", 0, str(exc)) from exc
            command = flow.send(response)
    except StopIteration as done:
        result: T = done.value
        return result


Refusals = dict[int, str]


def expect(response: ResponseAPDU, step: str, refusals: Refusals | None = None) -> bytes:
    """The data of a 9000 answer; a refusal SW for the rider, else a protocol error."""
    if response.sw == SW.OK:
        return response.data
    if refusals and response.sw in refusals:
        raise TransactionRefused(refusals[response.sw])
    raise CardProtocolError(step, response.sw)


def exchange(command: CommandAPDU, step: str, refusals: Refusals | None = None) -> Flow[bytes]:
    """Send ``command`` and return its data (see :func:`expect`)."""
    response = yield command
    return expect(response, step, refusals)


def parse(layout: Layout[R], data: bytes, step: str) -> R:
    try:
        return layout.parse(data)
    except LayoutError as exc:
        raise CardProtocolError(step, SW.OK, str(exc)) from exc


def check(condition: bool, step: str, detail: str) -> None:
    if not condition:
        raise CardProtocolError(step, SW.OK, detail)

