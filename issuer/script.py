"""Card-management orders as GlobalPlatform scripts, and the band's domains they open.

Issuance, cancellation, locking and registration are flows that yield
C-APDUs (:mod:`issuer.issuance`), and a flow cannot be saved. So a session
keeps only its log: the seed of its host challenges and the band's answers
so far. Every request rebuilds the flow by replaying the log (same seed,
same answers, same commands), so any worker process, or one started after a
crash, carries on the session, and the secure channel's keys never leave
memory.

A script runs in phases whose outcomes commit with the answer that ends
them (a cancellation records the card's proven balance before it deletes
the card). A new session starts again at the first phase, which reads what
the card holds now and so never repeats what an earlier session did.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from abc import abstractmethod
from collections import OrderedDict
from typing import Any

from applets.apdu import CommandAPDU, ResponseAPDU
from applets.gp.domain import ISD_AID
from issuer import gp
from issuer.issuance import Domain, factory_keys
from issuer.keystore import TEST_KEY_SET
from issuer.procedure import Context, OrderError, Procedure, State
from issuer.products import product
from issuer.topup import TopupError
from reader.errors import ReaderError
from reader.flow import Flow

#: What a script's flow raises when the card (or the relay) answers what it cannot take:
#: the order fails with the reason.
CARD_REFUSALS = (ReaderError, TopupError)
LIVE_FLOWS = 4096  # sessions in progress whose flows a process keeps


class Script(Procedure):
    """A card-management order as phases of GP flows, replayed from the session's log.

    The flows of sessions in progress also stay alive in this process, keyed
    by a digest of their whole log, so the next answer usually continues one
    instead of replaying (a log that differs, after a rollback or in another
    worker, finds no flow and replays).
    """

    def __init__(self) -> None:
        self._live: OrderedDict[str, tuple[Flow[Any], CommandAPDU]] = OrderedDict()
        self._lock = threading.Lock()

    @abstractmethod
    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[Any]:
        """The flow of ``phase``."""

    @abstractmethod
    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        """Apply the outcome of ``phase`` to the order; the next phase, None when done."""

    def fail(self, context: Context, reason: str) -> None:
        """The card (or the relay) answered what the flow cannot take. Nothing vouches for
        such an answer, so it ends no order: whatever the card did, the order stays as it is,
        money and all, until a contact proves what happened (:func:`hold`)."""
        hold(context, reason)

    def start(self, context: Context, last: State | None) -> State:
        return {"phase": 0, "seed": secrets.token_hex(16), "answers": []}

    def commands(self, context: Context, state: State) -> list[CommandAPDU]:
        if state.get("held"):  # this session proved nothing more: the next contact starts over
            return []
        with self._lock:
            live = self._live.get(_digest(state))
        return [live[1] if live is not None else self._replay(context, state)[1]]

    def receive(self, context: Context, state: State, response: ResponseAPDU) -> State:
        with self._lock:
            live = self._live.pop(_digest(state), None)
        flow, _ = live if live is not None else self._replay(context, state)
        state = {**state, "answers": [*state["answers"], response.encode().hex()]}
        try:
            self._keep(state, flow, flow.send(response))
            return state
        except StopIteration as done:
            outcome = done.value
        except CARD_REFUSALS as error:
            self.fail(context, str(error))
            return {**state, "held": True}
        phase = self.finish(context, state["phase"], outcome)
        while phase is not None:
            state = {"phase": phase, "seed": state["seed"], "answers": []}
            flow = self.flow(context, phase, _rng(state))
            try:
                self._keep(state, flow, next(flow))
                return state
            except StopIteration as done:
                phase = self.finish(context, phase, done.value)
            except CARD_REFUSALS as error:
                self.fail(context, str(error))
                return {**state, "held": True}
        return state

    def _keep(self, state: State, flow: Flow[Any], apdu: CommandAPDU) -> None:
        with self._lock:
            self._live[_digest(state)] = (flow, apdu)
            while len(self._live) > LIVE_FLOWS:
                self._live.popitem(last=False)

    def _replay(self, context: Context, state: State) -> tuple[Flow[Any], CommandAPDU]:
        flow = self.flow(context, state["phase"], _rng(state))
        try:
            apdu = next(flow)
            for answer in state["answers"]:
                apdu = flow.send(ResponseAPDU.parse(bytes.fromhex(answer)))
        except (StopIteration, *CARD_REFUSALS) as error:  # the log was replayed once already
            raise OrderError(f"the session's log does not replay ({error!r})") from error
        return flow, apdu


def _digest(state: State) -> str:
    return hashlib.sha256(json.dumps([state["seed"], state["phase"], state["answers"]])
                          .encode()).hexdigest()


def _rng(state: State) -> gp.Rng:
    """Host challenges from the session's seed and phase: unpredictable, yet the same on replay."""
    counter = 0

    def generate(size: int) -> bytes:
        nonlocal counter
        counter += 1
        label = f"{state['phase']}:{counter}".encode()
        return hmac.new(bytes.fromhex(state["seed"]), label, hashlib.sha256).digest()[:size]

    return generate


def card_manager(context: Context, key_set: str | None = None) -> Domain:
    """The band's card manager with the keys of ``key_set`` (default: those it has now)."""
    key_set = key_set or context.band.isd_key_set
    return Domain(ISD_AID, _pinned(context, factory_keys if key_set == TEST_KEY_SET
                                   else context.keys.domain_keys(key_set)))


def operator(context: Context) -> Domain:
    return Domain(product(context.card.product).domain_aid,
                  _pinned(context, context.keys.domain_keys(context.card.product)))


def _pinned(context: Context, keys: gp.Diversifier) -> gp.Diversifier:
    """Keys diversified with the band's data as registered (00 00 00 ‖ UID), never with what
    INITIALIZE UPDATE claims: a relay that alters those bytes must not choose the keys we
    derive, nor those we put on the card."""
    registered = bytes(3) + bytes.fromhex(context.band.uid)
    return lambda _claimed: keys(registered)


def hold(context: Context, reason: str) -> None:
    """The order stays unresolved (its state, and any money, where they are) until a contact
    brings the proof it needs."""
    context.order.last_error = f"{reason}; waiting for the card's proof at the next contact"
