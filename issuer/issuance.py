"""Over-the-air card management: the scripts a TSM runs on a band to take its card manager
over, and to issue, cancel and lock a purse.

An operator's cards live in the operator's own security domain (SSD). The
first issuance creates that domain through the card manager and replaces its
factory keys with the operator's keys diversified for this band; later ones
open it with those keys directly. The script may run again after a broken
session: it reads the registry first, finishes what an earlier run left half
done (an instance installed but never personalised is deleted and installed
again), and does nothing twice.

A purse is gone or locked only when the card says so under R-MAC: the
9000 of DELETE or SET STATUS, or the card manager's registry (GET STATUS,
which sees every domain's applications). An error status word carries no
R-MAC (GPCS Amd D), so a 6A88 proves nothing: :class:`Unproven`. Cards
made at the factory live under the card manager itself, not in an
operator's domain; the card manager removes or locks those.

A band comes from its maker with GlobalPlatform's test keys on the card
manager. Registration replaces them with the issuer's keys for this band
(:func:`take_card_manager`), proven by the band's own CPLC read under R-MAC,
so nobody else holding the band to a reader can open it.
"""

from __future__ import annotations

from dataclasses import dataclass

from applets import tlv
from applets.apdu import CommandAPDU
from applets.gp.channel import Level
from applets.gp.keys import INITIAL_KVN, KeySet
from applets.gp.loadfiles import PBOC_PURSE, SECURITY_DOMAIN, load_file_of
from applets.iso7816 import get_data
from applets.pboc import crypto
from applets.pboc.commands import P1_LOAD, initialize
from applets.pboc.layouts import INIT_LOAD_RESPONSE, InitCommand
from applets.pboc.perso import KEY_INDEX, PursePersonalisation, to_dgis
from applets.registry import PERSONALIZED
from applets.selection import select
from applets.sw import SW
from issuer import gp
from issuer.topup import CardLoadKeys, issuer_file
from reader.errors import TransactionRefused
from reader.flow import Flow, expect, parse

LEVEL = Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC
SSD_PRIVILEGES = bytes((0x80, 0x40, 0x00))  # security domain, authorized management


class Unproven(TransactionRefused):
    """The band's answers do not prove what the script needs: the order waits for the next
    contact (its money, if any, stays where it is)."""


@dataclass(frozen=True, slots=True)
class Domain:
    """A security domain on the band and the keys that open it on a given band."""

    aid: bytes
    keys: gp.Diversifier


def factory_keys(div_data: bytes) -> KeySet:
    """Any fresh domain's keys: GlobalPlatform's test key set, the same on every band."""
    return KeySet.test_keys()


def _module(class_name: str) -> tuple[bytes, bytes]:
    load_file = load_file_of(class_name)
    return load_file.aid, next(m for m, c in load_file.modules.items() if c == class_name)


def open_domain(aid: bytes, keys: gp.Diversifier, rng: gp.Rng) -> Flow[gp.HostChannel | None]:
    """SELECT and authenticate; None if the band has no such domain or refuses these keys."""
    response = yield select(aid)
    if response.sw == SW.FILE_NOT_FOUND:
        return None
    expect(response, "SELECT domain")
    try:
        return (yield from gp.open_channel(KeySet.test_keys(), LEVEL, rng, diversify=keys))
    except gp.AuthenticationFailed:
        return None


def operator_domain(card_manager: Domain, operator: Domain, rng: gp.Rng) -> Flow[gp.HostChannel]:
    """A channel to the operator's SSD, creating it and putting its keys first if need be."""
    channel = yield from open_domain(operator.aid, operator.keys, rng)
    if channel is not None:
        return channel
    factory = yield from open_domain(operator.aid, factory_keys, rng)
    if factory is None:
        isd = yield from open_domain(card_manager.aid, card_manager.keys, rng)
        if isd is None:
            raise gp.AuthenticationFailed("the card manager does not answer to our keys")
        load_file, module = _module(SECURITY_DOMAIN)
        yield from isd.send(gp.install(load_file, module, operator.aid, SSD_PRIVILEGES),
                            "INSTALL SSD")
        factory = yield from open_domain(operator.aid, factory_keys, rng)
        if factory is None:
            raise gp.AuthenticationFailed("the new domain does not answer to its factory keys")
    # A fresh domain's keys are the test keys a development card manager also answers to: a
    # relay that fakes the domain's SELECT leaves the card manager selected, which then proves
    # itself under R-MAC by its CPLC. Never give it the operator's keys.
    if (yield from _cplc(factory)) is not None:
        raise Unproven("the card manager answered in place of the operator's new domain")
    own = operator.keys(factory.div_data)
    yield from factory.send(gp.put_key(factory, own), "PUT KEY")
    channel = yield from open_domain(operator.aid, operator.keys, rng)
    if channel is None:
        raise gp.AuthenticationFailed("the operator's keys do not open the domain after PUT KEY")
    return channel


def issue_purse(card_manager: Domain, operator: Domain, aid: bytes,
                personalisation: PursePersonalisation, rng: gp.Rng) -> Flow[str]:
    """Install and personalise a purse in the operator's domain: 'issued' or 'already issued'."""
    channel = yield from operator_domain(card_manager, operator, rng)
    rows = yield from gp.status(channel, 0x40)
    existing = next((row for row in rows if row.aid == aid), None)
    if existing is not None and existing.lifecycle & 0x7F == PERSONALIZED:
        return "already issued"
    if existing is not None:
        yield from channel.send(gp.delete(aid), "DELETE half-issued")
    load_file, module = _module(PBOC_PURSE)
    yield from channel.send(gp.install(load_file, module, aid), "INSTALL")
    yield from channel.send(gp.install_for_personalization(aid), "INSTALL [for personalization]")
    blocks = gp.dgi_blocks(to_dgis(personalisation, channel.encrypt_key), STORE_DATA_LIMIT)
    for number, block in enumerate(blocks):
        yield from channel.send(gp.store_data(block, number, number == len(blocks) - 1,
                                              encrypted=True), "STORE DATA")
    return "issued"


#: DGIs per STORE DATA: enciphered (padded to 208), MACed and relayed (22 bytes of batch,
#: seal and fragment header), the command still fits one 244-byte BLE write at MTU 247.
STORE_DATA_LIMIT = 200


def verified_balance(aid: bytes, app_serial: bytes, keys: CardLoadKeys,
                     terminal: crypto.Terminal) -> Flow[int | None]:
    """The purse's balance as the card vouches for it (MAC1 of INITIALIZE FOR LOAD, 1 fen);
    None if the band has no such purse. Nothing is loaded: no CREDIT follows."""
    response = yield select(aid)
    if response.sw == SW.FILE_NOT_FOUND:
        return None
    issuer = issuer_file(expect(response, "SELECT purse"))
    if issuer.app_serial != app_serial:
        raise TransactionRefused("this band holds another card than the one named")
    response = yield initialize(P1_LOAD, InitCommand(KEY_INDEX, 1, terminal.terminal_id))
    if response.sw == SW.WRONG_DATA:
        raise TransactionRefused("the card is full to its limit: spend a little, then cancel")
    init = parse(INIT_LOAD_RESPONSE, expect(response, "INITIALIZE FOR LOAD"), "INITIALIZE answer")
    div = crypto.div_data(app_serial)
    if crypto.authorize_load(keys.load_key(div), keys.tac_key(div), init.balance, init.counter,
                             init.random, init.mac1, 1, terminal) is None:
        raise TransactionRefused("MAC1 is wrong: not the card named, or the relay altered it")
    return init.balance


def delete_purse(card_manager: Domain, operator: Domain, aid: bytes, rng: gp.Rng,
                 delete: bool = True) -> Flow[str]:
    """DELETE the purse (``delete``) or only prove it gone: 'deleted' or 'absent', each proven
    under R-MAC; :class:`Unproven` otherwise."""
    if delete and (yield from _in_operator_domain(operator, gp.delete(aid), rng)):
        return "deleted"
    isd, row = yield from _registered(card_manager, aid, rng)
    if row is None:
        return "absent"
    if delete and row.domain == card_manager.aid:  # a factory card, under the card manager
        yield from isd.send(gp.delete(aid), "DELETE")
        return "deleted"
    raise Unproven(f"the purse {aid.hex().upper()} is still on the band")


def lock_purse(card_manager: Domain, operator: Domain, aid: bytes, rng: gp.Rng,
               lock: bool = True) -> Flow[str]:
    """Lock the purse (SET STATUS) so no terminal can select it, or unlock it (``lock``
    False): 'locked' (or 'unlocked') or 'absent', each proven under R-MAC; :class:`Unproven`
    otherwise."""
    done = "locked" if lock else "unlocked"
    if (yield from _in_operator_domain(operator, gp.set_status(aid, lock=lock), rng)):
        return done
    isd, row = yield from _registered(card_manager, aid, rng)
    if row is None:
        return "absent"
    if bool(row.lifecycle & LOCKED) == lock:
        return done
    if row.domain == card_manager.aid:
        yield from isd.send(gp.set_status(aid, lock=lock), "SET STATUS")
        return done
    raise Unproven(f"the purse {aid.hex().upper()} is on the band and not {done}")


LOCKED = 0x80  # the life cycle's lock bit (GPCS 5.3.1)


def take_card_manager(cplc: bytes, test: Domain, own: Domain, rng: gp.Rng) -> Flow[str]:
    """Replace the card manager's test keys with ``own`` (PUT KEY, which ends the factory key
    set): 'taken', or 'taken already' when ours open it. Either is proven under R-MAC by the
    band's CPLC, so our keys go to the band registered and to no other."""
    channel = yield from open_domain(own.aid, own.keys, rng)
    if channel is not None:
        yield from _this_band(channel, cplc)
        return "taken already"
    channel = yield from open_domain(test.aid, test.keys, rng)
    if channel is None:
        raise Unproven("the card manager answers neither to the test keys nor to ours")
    yield from _this_band(channel, cplc)
    yield from channel.send(gp.put_key(channel, own.keys(channel.div_data), replace=INITIAL_KVN),
                            "PUT KEY")
    return "taken"


def _this_band(channel: gp.HostChannel, cplc: bytes) -> Flow[None]:
    if (yield from _cplc(channel)) != cplc:
        raise Unproven("the card manager that answered is not the registered band's")


def _cplc(channel: gp.HostChannel) -> Flow[bytes | None]:
    """The CPLC of the domain behind ``channel``, under R-MAC; None if it has none (only the
    card manager has one)."""
    response = channel.unwrap((yield channel.wrap(get_data(0x9F7F))))
    if response.sw != SW.OK:
        return None
    try:
        return tlv.decode(response.data)[0].value
    except (tlv.TLVError, IndexError) as error:
        raise Unproven(f"the card manager's CPLC is malformed: {error!r}") from error


def _in_operator_domain(operator: Domain, command: CommandAPDU, rng: gp.Rng) -> Flow[bool]:
    """Whether the operator's domain ran ``command`` and said so under R-MAC."""
    channel = yield from open_domain(operator.aid, operator.keys, rng)
    if channel is None:
        return False
    response = channel.unwrap((yield channel.wrap(command)))
    return bool(response.sw == SW.OK)


def _registered(card_manager: Domain, aid: bytes,
                rng: gp.Rng) -> Flow[tuple[gp.HostChannel, gp.Registered | None]]:
    """The card manager's registry entry of ``aid`` under R-MAC (None: not on the band)."""
    isd = yield from open_domain(card_manager.aid, card_manager.keys, rng)
    if isd is None:
        raise Unproven("the card manager does not answer to our keys")
    rows = yield from gp.status(isd, 0x40)  # every page: the card manager sees many
    return isd, next((row for row in rows if row.aid == aid), None)
