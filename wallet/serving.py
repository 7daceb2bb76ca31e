"""A band's long-running link (vpcd bridge, NFC emulation): served in the foreground or a thread."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Self

JOIN_S = 5.0


class Serving(ABC):
    """Serves until :meth:`stop`; :meth:`start` runs it in a daemon thread of its own."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def serve_forever(self) -> None:
        """Serve until ``stopping`` is set."""

    def _interrupt(self) -> None:  # noqa: B027 - a hook; most links notice ``stopping`` alone
        """Break off whatever the serving thread is blocked in."""

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End serving; wait for the thread, unless called from it (a hook of its own link)."""
        self.stopping.set()
        self._interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_S)
