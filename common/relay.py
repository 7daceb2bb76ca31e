"""The one rule of the APDU relay that the issuer and the phone must share: how a batch runs.

The issuer sends the phone a batch of C-APDUs per round trip. The band runs
them in order and the phone stops after the first answer other than 9000, so
a command never runs on a card that refused the one before it (a failed
SELECT leaves another applet selected). The phone posts the answers it has,
which may be fewer than the commands if the link to the band broke; the
issuer takes them as a prefix of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

OK = b"\x90\x00"


def run_batch(transmit: Callable[[bytes], bytes], commands: Sequence[bytes]) -> list[bytes]:
    """The band's answers to ``commands``, up to and including the first that is not 9000."""
    answers = []
    for command in commands:
        answers.append(transmit(command))
        if answers[-1][-2:] != OK:
            break
    return answers
