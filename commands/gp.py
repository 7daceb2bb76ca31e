"""``koala gp``: manage the band's cards with GlobalPlatform, as a TSM does, through a secure
channel opened on whatever card the options name."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from applets import selection
from applets.gp.channel import Level
from applets.gp.domain import ISD_AID
from applets.gp.keys import TEST_KEY, KeySet
from applets.sw import SW
from commands.world import Source, World, identifier, json_option, pass_world, trace_file_option
from issuer import gp
from reader.errors import CardProtocolError
from reader.flow import Flow, expect, run

T = TypeVar("T")
GP_LEVEL = Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC


def gp_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--band", "band_name", help="The band (in process)."),
        click.option("--reader", help="Through this PC/SC reader instead (index or name)."),
        click.option("--nfc", "nfc_path", metavar="PATH", help="Through this nfcpy device instead."),
        click.option("--wait", type=float, default=10.0, show_default=True,
                     help="Seconds to wait for a card on a reader."),
        click.option("--sd", "domain", default=ISD_AID.hex().upper(), show_default=True,
                     help="AID of the security domain to open a channel with."),
        click.option("--key", default=TEST_KEY.hex().upper(), show_default="GP test key 404142…4F",
                     help="ENC, MAC and DEK key (hex) unless --enc/--mac/--dek are given."),
        click.option("--enc", help="ENC key (hex)."),
        click.option("--mac", help="MAC key (hex)."),
        click.option("--dek", help="DEK key (hex)."),
        click.option("--kvn", type=click.IntRange(0, 255), default=0, show_default=True,
                     help="Key version number (0: the domain's first key set)."),
        click.option("--scp", type=click.Choice(["2", "3"]), default="3", show_default=True,
                     help="Secure channel protocol of the domain's keys."),
        click.option("--diversify", type=click.Choice(["none", *gp.SCHEMES]), default="none",
                     show_default=True,
                     help="The keys are masters; derive the band's own from its diversification data."),
        trace_file_option,
    ]):
        function = option(function)
    return function


@dataclass(frozen=True)
class GpTarget:
    source: Source
    domain: bytes
    keys: KeySet
    diversify: gp.Diversifier | None
    trace_file: Path | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GpTarget:
        def key(name: str) -> bytes:
            return _hex(options[name] or options["key"], f"--{name}")

        try:
            keys = KeySet(options["kvn"], int(options["scp"]), key("enc"), key("mac"), key("dek"))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--key") from None
        source = Source(options["band_name"], options["reader"], options["nfc_path"],
                        options["wait"])
        scheme = options["diversify"]
        derive = gp.diversified(keys, scheme) if scheme != "none" else None
        return cls(source, _hex(options["domain"], "--sd"), keys, derive, options["trace_file"])


def _hex(text: str, hint: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not hexadecimal", param_hint=hint) from None


def run_gp(world: World, target: GpTarget,
           body: Callable[[gp.HostChannel], Flow[T]]) -> T:
    """Open a secure channel to the target domain and run ``body`` in it."""

    def flow() -> Flow[T]:
        expect((yield selection.select(target.domain)), "SELECT domain")
        level = GP_LEVEL if target.keys.scp == 3 else GP_LEVEL & ~Level.R_MAC
        channel = yield from gp.open_channel(target.keys, level, os.urandom, target.keys.version,
                                             target.diversify)
        return (yield from body(channel))

    with world.link(target.source, target.trace_file) as link:
        return run(flow(), link)


@click.group("gp")
def gp_group() -> None:
    """Manage the band's cards with GlobalPlatform, as a TSM does (secure channel)."""


@gp_group.command("list")
@gp_options
@json_option
@pass_world
def gp_list(world: World, /, as_json: bool, **options: Any) -> None:
    """The domains, applications and load files the domain may see."""
    rows = run_gp(world, GpTarget.from_options(options), registry)
    if as_json:
        world.emit([{"kind": r.kind, "aid": r.record.aid.hex().upper(),
                     "lifecycle": r.record.lifecycle, "state": r.state,
                     "privileges": r.record.privileges.hex().upper(),
                     "domain": r.record.domain.hex().upper(),
                     "load_file": r.record.load_file.hex().upper(),
                     "version": r.record.version.hex().upper(),
                     "modules": [m.hex().upper() for m in r.record.modules]}
                    for r in rows])
        return
    table = Table(identifier("AID"), "kind", "life cycle", identifier("privileges"),
                  identifier("domain / modules"), title="GlobalPlatform registry")
    for r in rows:
        if r.kind == LOAD_FILE:
            where = " ".join(m.hex().upper() for m in r.record.modules)
        else:
            where = r.record.domain.hex().upper()
        table.add_row(r.record.aid.hex().upper(), r.kind, r.state,
                      r.record.privileges.hex().upper(), where)
    world.console.print(table)


CARD_MANAGER, SECURITY_DOMAIN, APPLICATION, LOAD_FILE = (
    "card manager", "security domain", "application", "load file")


@dataclass(frozen=True)
class Row:
    """A registry record and what it is: the life cycle's name depends on that."""

    kind: str
    record: gp.Registered

    @property
    def state(self) -> str:
        return lifecycle_name(self.record.lifecycle, self.kind)


def registry(channel: gp.HostChannel) -> Flow[list[Row]]:
    """GET STATUS of the card manager, the applications and domains and the load files with
    their modules, every page of each, as far as the channel's domain may see them."""
    rows = [Row(CARD_MANAGER, r) for r in (yield from gp.status(channel, 0x80))]
    for record in (yield from gp.status(channel, 0x40)):
        domain = bool(record.privileges and record.privileges[0] & SECURITY_DOMAIN_BIT)
        rows.append(Row(SECURITY_DOMAIN if domain else APPLICATION, record))
    try:
        files = yield from gp.status(channel, 0x10)
    except CardProtocolError as error:  # a card that lists no modules: the load files alone
        if error.sw != SW.INCORRECT_P1_P2:
            raise
        files = yield from gp.status(channel, 0x20)
    return rows + [Row(LOAD_FILE, r) for r in files]


#: Life cycle states by what they are the state of (GPCS 11.1.1: Tables 11-3 to 11-5).
CARD_STATES = {0x01: "OP_READY", 0x07: "INITIALIZED", 0x0F: "SECURED", 0x7F: "CARD_LOCKED",
               0xFF: "TERMINATED"}
LOAD_FILE_STATES = {0x01: "LOADED"}
DOMAIN_STATES = {0x03: "INSTALLED", 0x07: "SELECTABLE", 0x0F: "PERSONALIZED"}
APPLICATION_STATES = {0x03: "INSTALLED", 0x07: "SELECTABLE"}
SECURITY_DOMAIN_BIT = 0x80  # privileges byte 1, b8


def lifecycle_name(state: int, kind: str = APPLICATION) -> str:
    """The name GPCS gives ``state`` of a card (the card manager's row), a load file, a
    security domain or an application. An application's 0xxx x111 states beyond 07 are its
    own (application-specific, selectable); b8 locks a domain or an application and keeps
    the state it had."""
    if kind == CARD_MANAGER:
        return CARD_STATES.get(state, f"{state:02X}")
    if kind == LOAD_FILE:
        return LOAD_FILE_STATES.get(state, f"{state:02X}")
    if state & 0x80:
        return f"LOCKED ({lifecycle_name(state & 0x7F, kind)})"
    if kind == SECURITY_DOMAIN:
        return DOMAIN_STATES.get(state, f"{state:02X}")
    if state in APPLICATION_STATES:
        return APPLICATION_STATES[state]
    if state & 0x07 == 0x07:
        return f"SELECTABLE ({state:02X})"
    return f"{state:02X}"


@gp_group.command("install")
@gp_options
@click.option("--package", "load_file", required=True, help="Load file AID (hex).")
@click.option("--module", required=True, help="Module AID (hex).")
@click.option("--aid", "instance", required=True, help="New instance AID (hex).")
@click.option("--privileges", default="00", show_default=True, help="Privileges (hex, 1-3 bytes).")
@pass_world
def gp_install(world: World, /, load_file: str, module: str, instance: str, privileges: str,
               **options: Any) -> None:
    """INSTALL [for install and make selectable] from the band's load files."""
    target = GpTarget.from_options(options)
    command = gp.install(_hex(load_file, "--package"), _hex(module, "--module"),
                         _hex(instance, "--aid"), _hex(privileges, "--privileges"))
    run_gp(world, target, lambda channel: channel.send(command, "INSTALL"))
    world.console.print(f"installed {instance.upper()}")


@gp_group.command("delete")
@gp_options
@click.option("--aid", "instance", required=True, help="Instance AID (hex).")
@click.option("--related", is_flag=True, help="Also delete a domain's applications.")
@pass_world
def gp_delete(world: World, /, instance: str, related: bool, **options: Any) -> None:
    """DELETE an instance and all it kept."""
    target = GpTarget.from_options(options)
    command = gp.delete(_hex(instance, "--aid"), related)
    run_gp(world, target, lambda channel: channel.send(command, "DELETE"))
    world.console.print(f"deleted {instance.upper()}")


@gp_group.command("lock")
@gp_options
@click.option("--aid", "instance", required=True, help="Instance AID (hex).")
@click.option("--unlock", is_flag=True, help="Unlock instead.")
@pass_world
def gp_lock(world: World, /, instance: str, unlock: bool, **options: Any) -> None:
    """Lock (or unlock) an application: a lost band's cards stop working at gates."""
    target = GpTarget.from_options(options)
    command = gp.set_status(_hex(instance, "--aid"), lock=not unlock)
    run_gp(world, target, lambda channel: channel.send(command, "SET STATUS"))
    world.console.print(f"{'unlocked' if unlock else 'locked'} {instance.upper()}")
