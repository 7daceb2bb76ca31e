"""A metro gate: entry records the station, exit charges the fare by distance.

Both directions use the compound purchase (INITIALIZE FOR CAPP PURCHASE,
UPDATE CAPP DATA CACHE, DEBIT FOR CAPP PURCHASE) so that the transit record
in EF 0x17 and the money move in one card transaction: entry is a purchase
of 0 that writes the entry, exit a purchase of the fare that writes the exit.
A refused tap writes and charges nothing.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from applets import bcd
from applets.pboc.layouts import (
    METRO_RECORD_ID,
    TRANSIT_RECORD,
    IssuerFile,
    JourneyStatus,
    TransitRecord,
    TxType,
)
from reader import pboc
from reader.clock import Clock, local
from reader.errors import TransactionRefused
from reader.flow import Flow
from reader.metro import BEIJING_2014, FareTable, MetroError, MetroNetwork, Station
from reader.psam import Psam
from reader.terminal import PurseTerminal, TapResult

MAX_JOURNEY = timedelta(hours=4)


class Direction(Enum):
    ENTRY = "entry"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class GateConfig:
    network: MetroNetwork
    station: Station
    direction: Direction
    fares: FareTable = BEIJING_2014
    max_journey: timedelta = MAX_JOURNEY
    aid: bytes = pboc.T_UNION_AID


class MetroGate(PurseTerminal):
    def __init__(self, psam: Psam, clock: Clock, config: GateConfig,
                 blacklist: Container[bytes] = frozenset()) -> None:
        super().__init__(psam, clock, blacklist)
        self.config = config

    @property
    def place(self) -> str:
        return f"metro {self.config.direction.value} {self.config.station.name}"

    def tap(self) -> Flow[TapResult]:
        """One card at the gate: recover an interrupted tap, else enter or exit."""
        now = local(self.clock())
        issuer = yield from pboc.select_purse(self.config.aid)
        yield from self.refuse_listed(issuer)
        self.check_validity(issuer, now)
        recovered = yield from self.recover(issuer)
        if recovered is not None:
            return TapResult(self.place, recovered.amount, recovered.balance_after, recovered,
                             recovered=True)
        record = yield from pboc.read_transit_record(METRO_RECORD_ID)
        if self.config.direction is Direction.ENTRY:
            return (yield from self._enter(issuer, record, now))
        return (yield from self._exit(issuer, record, now))

    def _entered_at(self, record: TransitRecord) -> datetime:
        try:
            return bcd.to_datetime(record.entry_date, record.entry_time)
        except ValueError as exc:
            raise TransactionRefused("the card's entry record is damaged: see station staff") from exc

    def _enter(self, issuer: IssuerFile, record: TransitRecord, now: datetime) -> Flow[TapResult]:
        if record.status == JourneyStatus.ENTERED:
            entered = self._entered_at(record)
            if now - entered <= self.config.max_journey:
                where = self._station_name(record.entry_station)
                raise TransactionRefused(f"already entered at {where} at {entered:%H:%M}: "
                                         f"tap out first or see station staff")
        date, time = bcd.date_time(now)
        station = self.config.station
        entry = replace(record, status=JourneyStatus.ENTERED, entry_station=station.code,
                        entry_terminal=self.terminal_id, entry_date=date, entry_time=time,
                        exit_station=0, exit_terminal=bytes(6), exit_date=bytes(4),
                        exit_time=bytes(3), fare=0)
        debit = yield from self.purchase(issuer, TxType.CAPP_PURCHASE, 0, now,
                                         capp_record=TRANSIT_RECORD.build(entry),
                                         minimum_balance=self.config.fares.fare_fen(0))
        return TapResult(self.place, 0, debit.balance_after, debit)

    def _exit(self, issuer: IssuerFile, record: TransitRecord, now: datetime) -> Flow[TapResult]:
        if record.status != JourneyStatus.ENTERED:
            raise TransactionRefused("no entry recorded on this card: see station staff")
        entered = self._entered_at(record)
        if now < entered:
            raise TransactionRefused(f"this gate's clock ({now:%Y-%m-%d %H:%M}) is before the "
                                     f"card's entry at {entered:%Y-%m-%d %H:%M}: see station staff")
        if now - entered > self.config.max_journey:
            raise TransactionRefused(f"entry at {entered:%Y-%m-%d %H:%M} has expired "
                                     f"(journeys are limited to {self.config.max_journey}): "
                                     f"see station staff")
        try:
            origin = self.config.network.station(record.entry_station)
            km = self.config.network.distance_km(origin, self.config.station)
        except MetroError as exc:
            raise TransactionRefused(f"entry station {record.entry_station:04X} is not on this "
                                     f"network: see station staff") from exc
        fare = self.config.fares.fare_fen(km)
        date, time = bcd.date_time(now)
        exit_record = replace(record, status=JourneyStatus.EXITED,
                              exit_station=self.config.station.code,
                              exit_terminal=self.terminal_id, exit_date=date, exit_time=time,
                              fare=fare)
        debit = yield from self.purchase(issuer, TxType.CAPP_PURCHASE, fare, now,
                                         capp_record=TRANSIT_RECORD.build(exit_record))
        journey = f"{origin.name} → {self.config.station.name}, {km:.1f} km"
        return TapResult(self.place, fare, debit.balance_after, debit, journey=journey)

    def _station_name(self, code: int) -> str:
        try:
            return self.config.network.station(code).name
        except MetroError:
            return f"station {code:04X}"
