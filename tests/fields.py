"""Ways to hold a band to a reader in tests, all real: in process, through pcscd, through nfcpy.

Each field offers ``tap(band)``, a context manager giving the reader-side
transport for one tap, and ``pull()``, which breaks the link for real (the
vpcd socket closes; the band leaves the NFC field).

The pcscd a test run talks to is its own where the machine allows it, so that
two test runs, or a test run and a user's ``koala band attach``, never see
each other's bands: pcscd 1.9 keeps its socket and pid file at fixed paths
under /run/pcscd, so the run's pcscd gets a mount namespace in which a
private directory is /run/pcscd (``unshare``, as root or in a user namespace),
its own reader.conf.d with vpcd on two free ports, and the run's PC/SC
clients find it through ``$PCSCLITE_CSOCK_NAME`` (libpcsclite reads it once,
so it is set before any client of this process starts). ``koala band attach``
finds the run's vpcd port in ``$KOALA_VPCD_PORT``. Where no namespace can be
had, or with ``KOALA_TEST_PCSCD=system``, the tests use the machine's pcscd
(started here if none runs) on vpcd's configured port, and a port some other
bridge holds fails the test with that message instead of being shared.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path

from reader.nfc import NfcReader
from reader.pcsc import NoReader, PcscReader, reader_names
from reader.transport import Transport, in_field
from wallet.band import Band
from wallet.nfc import NfcCard
from wallet.vpcd import CLAIM_S, DEFAULT_PORT, VpcdBridge, VpcdCard

VPCD_NAME = "Virtual PCD"  # FRIENDLYNAME of Debian's /etc/reader.conf.d/vpcd, kept: the README names it
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_RUN = Path("/run/pcscd")
SOCKET_VARIABLE = "PCSCLITE_CSOCK_NAME"  # where libpcsclite clients look for pcscd
PORT_VARIABLE = "KOALA_VPCD_PORT"  # the vpcd port `koala band attach` takes by default
MODE_VARIABLE = "KOALA_TEST_PCSCD"  # "system": the machine's pcscd, not one of the run's own
VPCD_READER = f"{VPCD_NAME} 00 00"
PCSCD_POLL_S = 0.4  # pcscd asks vpcd for card presence this often
START_S = 15


def vpcd_readers() -> list[str]:
    try:
        return [name for name in reader_names() if name.startswith(VPCD_NAME)]
    except NoReader:
        return []


def configured_vpcd_port(conf: Path = VPCD_CONF) -> int:
    """vpcd's port in the machine's reader.conf.d (``DEVICENAME /dev/null:0x8C7B``)."""
    try:
        found = re.search(r"^DEVICENAME\s+/dev/null:(\w+)", conf.read_text(), re.M)
    except OSError:
        found = None
    return int(found[1], 0) if found else DEFAULT_PORT


def free_port_pair() -> int:
    """A port free for vpcd's slot 0 with the next one free for slot 1, on every address
    (vpcd listens on all of them)."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("", port + 1))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no two free ports in a row for vpcd's slots")


class Pcscd:
    """The pcscd of a test run: its vpcd port (slot 0; slot 1 listens on the next), its
    readers' names, and, when it is the run's own (``own``), a stop and a start."""

    def __init__(self, port: int, own: bool) -> None:
        self.port = port
        self.own = own

    def reader(self, slot: int = 0) -> str:
        return f"{VPCD_NAME} 00 {slot:02d}"

    def stop(self) -> None:
        raise RuntimeError("the machine's pcscd is not the test run's to stop")

    def start(self) -> None:
        raise RuntimeError("the machine's pcscd is not the test run's to start")


def _unshare() -> list[str] | None:
    """The unshare command that gives pcscd a /run/pcscd of its own here, if any does."""
    binary = shutil.which("unshare")
    if binary is None or not VPCD_DRIVER.exists() or not shutil.which("pcscd"):
        return None
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    command = [binary, *userns, "--mount", "--propagation", "private"]
    with tempfile.TemporaryDirectory() as scratch:
        probe = subprocess.run([*command, "sh", "-c", _MOUNT + " && true", "sh", scratch],
                               capture_output=True, timeout=10, check=False)
    return command if probe.returncode == 0 else None


_MOUNT = f'mkdir -p {PCSCD_RUN} && mount --bind "$1" {PCSCD_RUN}'


class OwnPcscd(Pcscd):
    """pcscd in a mount namespace where ``root``/run is /run/pcscd, vpcd on ``port``."""

    def __init__(self, unshare: list[str], root: Path, port: int) -> None:
        super().__init__(port, own=True)
        self.unshare = unshare
        self.run = root / "run"
        self.conf = root / "reader.conf.d"
        self.run.mkdir()
        self.conf.mkdir()
        (self.conf / "vpcd").write_text(
            f'FRIENDLYNAME "{VPCD_NAME}"\nDEVICENAME   /dev/null:{port:#06x}\n'
            f"LIBPATH      {VPCD_DRIVER}\nCHANNELID    {port:#06x}\n")
        self.socket = self.run / "pcscd.comm"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        script = f'{_MOUNT} && exec "$2" --foreground --error --config "$3"'
        self.process = subprocess.Popen(  # unshare and sh exec: this is pcscd's own pid
            [*self.unshare, "sh", "-c", script, "sh", str(self.run), binary, str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_S
        while len(vpcd_readers()) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"the test run's pcscd did not come up with vpcd on port "
                                   f"{self.port}: {error}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextmanager
def _variables(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def running_pcscd() -> Iterator[Pcscd]:
    """The test run's pcscd with the vpcd driver: one of its own where the machine allows,
    else the machine's (see the module's docstring)."""
    unshare = None if os.environ.get(MODE_VARIABLE) == "system" else _unshare()
    if unshare is None:
        with _system_pcscd() as shared:
            yield shared
        return
    with tempfile.TemporaryDirectory(prefix="koala-pcscd-") as root:
        own = OwnPcscd(unshare, Path(root), free_port_pair())
        with _variables(**{SOCKET_VARIABLE: str(own.socket), PORT_VARIABLE: str(own.port)}):
            if vpcd_readers():
                raise RuntimeError("this process talked PC/SC before the test run's pcscd was "
                                   f"set up and keeps the machine's socket: set ${SOCKET_VARIABLE}"
                                   " first, or KOALA_TEST_PCSCD=system")
            own.start()
            try:
                yield own
            finally:
                own.stop()


@contextmanager
def _system_pcscd() -> Iterator[Pcscd]:
    """The machine's pcscd with the vpcd driver: the running one, or one started here and
    stopped after."""
    port = configured_vpcd_port()
    with _variables(**{PORT_VARIABLE: str(port)}):
        if vpcd_readers():
            yield Pcscd(port, own=False)
            return
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not shutil.which(binary):
            raise RuntimeError("pcscd is not installed: `make test` installs pcscd and "
                               "vsmartcard-vpcd")
        process = subprocess.Popen([binary, "--foreground", "--error"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_S
        while not vpcd_readers():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"pcscd did not come up with the vpcd reader: "
                                   f"{process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.1)
        try:
            yield Pcscd(port, own=False)
        finally:
            process.terminate()
            process.wait(10)


class InProcessField:
    name = "inproc"

    @contextmanager
    def tap(self, band: Band) -> Iterator[Transport]:
        with in_field(band) as link:
            yield link

    def close(self) -> None:
        pass


class PcscField:
    """The band attached to the run's vpcd slot 0; each tap is a PC/SC connect and
    disconnect. A slot another bridge holds fails the tap: vpcd would not have served ours."""

    name = "pcsc"

    def __init__(self, pcscd: Pcscd) -> None:
        self.pcscd = pcscd
        self._bridge: VpcdBridge | None = None
        self._band: Band | None = None
        self._pulled_at = 0.0

    def _attach(self, band: Band) -> None:
        if self._band is band and self._bridge is not None:
            return
        self.pull()
        self._wait_until_absent()
        # vpcd takes a new card only after pcscd has polled the old one away,
        # as a rider takes a moment to tap again.
        time.sleep(max(0.0, self._pulled_at + 2 * PCSCD_POLL_S - time.monotonic()))
        self._band = band
        self._bridge = VpcdBridge(VpcdCard(band), port=self.pcscd.port).start()
        self._bridge.claim(CLAIM_S + 2 * PCSCD_POLL_S)  # VpcdBusy when the slot is taken

    @contextmanager
    def tap(self, band: Band) -> Iterator[Transport]:
        self._attach(band)
        card = PcscReader(self.pcscd.reader()).wait_for_card(10)
        try:
            yield card
        finally:
            card.disconnect()

    def pull(self) -> None:
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
            self._pulled_at = time.monotonic()

    def _wait_until_absent(self) -> None:
        reader = PcscReader(self.pcscd.reader())
        deadline = time.monotonic() + 5 * PCSCD_POLL_S
        while reader.card_present() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.pull()
        self._wait_until_absent()


_ports = count(54321)


class NfcField:
    """The band listening through nfcpy's UDP driver; each tap is an activation."""

    name = "nfc"

    def __init__(self) -> None:
        self.path = f"udp:localhost:{next(_ports)}"
        self._card: NfcCard | None = None
        self._reader = NfcReader(self.path)

    def _attach(self, band: Band) -> NfcCard:
        if self._card is not None and self._card.band is band:
            return self._card
        self.pull()
        self._card = NfcCard(band, self.path).start()
        self._card.listening.wait(5)
        return self._card

    @contextmanager
    def tap(self, band: Band) -> Iterator[Transport]:
        self._attach(band)
        link = self._reader.wait_for_card(10)
        try:
            yield link
        finally:
            self._reader.release()

    def pull(self) -> None:
        if self._card is not None:
            self._card.stop()
            self._card = None

    def close(self) -> None:
        self.pull()
        self._reader.close()
