"""Bumble's virtual controllers on one in-process link: a band and a phone without a radio.

For tests and the command line without a Bluetooth controller: every host a
:class:`VirtualRadio` makes hears the others, as on air but with no radio
timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bumble.controller import Controller
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink


class VirtualRadio:
    """Bumble's virtual controllers on one in-process link: every host it makes hears the others.

    No radio timing is modelled, but advertising still runs on its interval,
    so a band under test should advertise often (every 20 ms, say).
    """

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]  # Bumble leaves it untyped
        self._controllers: list[Controller] = []

    def host(self) -> Host:
        """A host on a new virtual controller of this link (call it inside the event loop)."""
        controller = Controller(f"virtual-{len(self._controllers) + 1}", link=self.link)
        self._controllers.append(controller)
        return Host(controller, AsyncPipeSink(controller))

    def close(self) -> None:
        """Take the controllers off the link, so nothing more reaches their hosts."""
        for controller in self._controllers:
            self.link.remove_controller(controller)
        self._controllers.clear()


@asynccontextmanager
async def virtual_radio() -> AsyncIterator[VirtualRadio]:
    """A :class:`VirtualRadio` for the duration of a test or demo, closed afterwards."""
    radio = VirtualRadio()
    try:
        yield radio
    finally:
        radio.close()
