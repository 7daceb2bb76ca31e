"""Errors on the card side.

An applet raises :class:`CardError` with the status word the terminal should
see; the runtime turns it into a response and rolls the command back.
:class:`PowerLoss` is not an error of the card: it is the simulation cutting
power, and it must travel through everything untouched.
"""

from __future__ import annotations

from applets.sw import SW


class CardError(Exception):
    """The card refuses a command with status word ``sw``."""

    def __init__(self, sw: int, reason: str = "") -> None:
        self.sw = sw
        self.reason = reason
        name = SW(sw).name if sw in SW._value2member_map_ else f"{sw:04X}"
        super().__init__(f"{sw:04X} {name}" + (f": {reason}" if reason else ""))


class PowerLoss(BaseException):
    """Power was cut at a persistent write (a tear).

    Derived from BaseException so that no ``except Exception`` in an applet
    can swallow it, just as no code on a real card runs after a tear.
    """
