"""tshark reading our pcapng traces: what Wireshark makes of every frame and every APDU.

The ISO 14443 dissector hands an I-block's INF to whatever "Decode As" names for
``iso14443.subdissector``; :data:`DECODE_AS` names ISO 7816, as a user does in
Wireshark. ISO 7816 tries every response as an ATR first, so a response whose first byte
is 3B or 3F (a random TAC or cryptogram, one tap in a hundred or so) is read as an ATR and
often called malformed: that is Wireshark guessing, not the frame, so :func:`malformed` and
:func:`expert` leave those frames out (:data:`NOT_AN_ATR`) and :func:`check_response` checks
their bytes instead. tshark is a system package (the Makefile's ``APT_PACKAGES``): a test
without it skips on a developer's machine and fails in CI (``$CI`` set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DECODE_AS = ("-d", "iso14443.subdissector,iso7816")
FIELDS = ("frame.number", "frame.time_epoch", "iso14443.event", "iso14443.crc.status",
          "iso14443.inf", "iso14443.apdu_fragment", "iso7816.apdu.cla", "iso7816.apdu.ins",
          "iso7816.apdu.p1", "iso7816.apdu.p2", "iso7816.apdu.lc", "iso7816.apdu.body",
          "iso7816.apdu.le", "iso7816.apdu.sw1", "iso7816.apdu.sw2", "iso7816.atr.init_char")
PCD_TO_PICC, PICC_TO_PCD = 0xFE, 0xFF
NOT_AN_ATR = "!iso7816.atr"


def tshark() -> str:
    """The tshark binary; skip without it, unless in CI, where `make test` installs it."""
    found = shutil.which("tshark")
    if found is None:
        message = "tshark is not installed (apt-get install tshark; make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(path: Path, *args: str) -> str:
    result = subprocess.run([tshark(), "-r", str(path), *DECODE_AS, *args], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def malformed(path: Path) -> str:
    """The summary lines of every frame Wireshark calls malformed (nothing when none is)."""
    return run(path, "-Y", f"_ws.malformed && {NOT_AN_ATR}")


def expert(path: Path) -> str:
    """tshark's expert information: nothing at all when no frame raised any."""
    return run(path, "-q", "-z", f"expert,{NOT_AN_ATR}").strip()


def uid(path: Path) -> str:
    """The UID the card gave in anticollision (its UID CLn answers, CT left out), in hex."""
    return "".join(run(path, "-Y", f"iso14443.event == {PICC_TO_PCD:#x}", "-T", "fields",
                       "-e", "iso14443.uid_cln").split())


@dataclass(frozen=True)
class Packet:
    number: int
    epoch_s: float
    event: int
    crc_good: bool | None
    fields: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.fields.get(name) or []
        return values[0] if values else None

    def byte(self, name: str) -> int | None:
        value = self.first(name)
        return None if value is None else int(value, 16)

    def data(self, name: str) -> bytes | None:
        value = self.first(name)
        return None if value is None else bytes.fromhex(value)


def packets(path: Path) -> list[Packet]:
    """Every packet with the fields of :data:`FIELDS` as tshark decodes them."""
    out = run(path, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a",
              "-E", "aggregator=,", *[arg for name in FIELDS for arg in ("-e", name)])
    decoded = []
    for line in out.splitlines():
        values = dict(zip(FIELDS, line.split("|"), strict=True))
        fields = {name: value.split(",") for name, value in values.items() if value}
        crc = values["iso14443.crc.status"]
        decoded.append(Packet(int(values["frame.number"]), float(values["frame.time_epoch"]),
                              int(values["iso14443.event"], 16), crc == "1" if crc else None,
                              fields))
    return decoded


@dataclass(frozen=True)
class Apdu:
    """One APDU as Wireshark saw it: the frame that completed it, its bytes (the INF of its
    I-blocks, reassembled), and the ISO 7816 fields it decoded."""

    packet: Packet
    raw: bytes

    @property
    def command(self) -> bool:
        return self.packet.event == PCD_TO_PICC


def apdus(decoded: list[Packet]) -> list[Apdu]:
    """The APDUs in order: every frame where ISO 7816 decoded a command or a response."""
    by_number = {packet.number: packet for packet in decoded}
    found = []
    for packet in decoded:
        if not ({"iso7816.apdu.cla", "iso7816.apdu.sw1", "iso7816.atr.init_char"} & set(packet.fields)):
            continue
        parts = [int(n) for n in packet.fields.get("iso14443.apdu_fragment", [str(packet.number)])]
        raw = b"".join(by_number[n].data("iso14443.inf") or b"" for n in parts)
        found.append(Apdu(packet, raw))
    return found


def check_command(apdu: Apdu, command: bytes) -> None:
    """The decoded command is ``command``: CLA always; INS, P1, P2, Lc, data, Le when the
    class says ISO 7816 codes them (Wireshark decodes no further for a proprietary class)."""
    assert apdu.command and apdu.raw == command, (apdu.raw.hex(), command.hex())
    packet = apdu.packet
    assert packet.byte("iso7816.apdu.cla") == command[0]
    if packet.byte("iso7816.apdu.ins") is None:
        assert 0x80 <= command[0] <= 0x9F or 0xB0 <= command[0] <= 0xCF, command.hex()
        return
    assert (packet.byte("iso7816.apdu.ins"), packet.byte("iso7816.apdu.p1"),
            packet.byte("iso7816.apdu.p2")) == (command[1], command[2], command[3])
    body = command[4:]
    if len(body) == 1:
        assert packet.byte("iso7816.apdu.le") == body[0]
    elif body:
        assert packet.byte("iso7816.apdu.lc") == body[0]
        assert (packet.data("iso7816.apdu.body") or b"") == body[1:1 + body[0]]
        rest = body[1 + body[0]:]
        assert packet.byte("iso7816.apdu.le") == (rest[0] if rest else None)


def check_response(apdu: Apdu, response: bytes) -> None:
    """The decoded response is ``response``: its data and SW1 SW2. Wireshark tries every
    response as an ATR first; one that starts with 3B or 3F is shown as one, bytes intact."""
    assert not apdu.command and apdu.raw == response, (apdu.raw.hex(), response.hex())
    packet = apdu.packet
    if packet.first("iso7816.atr.init_char") is not None:
        assert response[0] in (0x3B, 0x3F)
        return
    assert (packet.byte("iso7816.apdu.sw1"), packet.byte("iso7816.apdu.sw2")) == \
        (response[-2], response[-1])
    assert (packet.data("iso7816.apdu.body") or b"") == response[:-2]
