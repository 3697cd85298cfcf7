"""The simulation as a whole: `Simulation(config).records()` yields every event in order.

Order is fully determined by the seed, the scenario and the parameters: simulated time starts at
a fixed date, the random streams are seeded, and nothing depends on the wall clock, on hash
seeds or on scheduling. `events()` yields validated pydantic models for callers that want them;
`lines()` yields the wire bytes (identical to `schemas.events.dump_event`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Final

from infra.errors import SandboxError
from producers.sim.adoption import monthly_step
from producers.sim.calendar import DEFAULT_START, Calendar, SimDay
from producers.sim.calibration import Calibration, load_calibration
from producers.sim.flows import Economy
from producers.sim.identifiers import IdSource
from producers.sim.population import (
    BILLERS,
    GOVERNMENT,
    build_citizens,
    build_institutions,
    build_merchants,
    employer_count,
)
from producers.sim.records import Record, Timestamps, event_type_of
from producers.sim.registry import Registry, biller_district, government_district
from producers.sim.scenario import Scenario, load_scenario
from producers.sim.stats import DayStats, RunStats
from schemas.envelope import Envelope

CITIZENS_MAX = 10_000_000
MERCHANTS_MAX = 2_000_000
DAYS_MAX = 36_600
BATCH_EVENTS = 4_096  # records per list from `batches`: big enough to amortise, small in memory
NO_EVENT_ID: Final = "00000000-0000-4000-8000-000000000000"  # what a run without events uses for ids


class NoIds(IdSource):
    """An IdSource for runs that emit no events: every id is the same constant, nothing is drawn."""

    __slots__ = ()

    def __init__(self) -> None:  # no random stream to seed
        pass

    def next_uuid(self) -> str:
        """The constant id (nobody reads it)."""
        return NO_EVENT_ID


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a run. Same config, same event stream."""

    seed: int
    days: int
    citizens: int
    merchants: int
    scenario: Scenario = field(default_factory=lambda: load_scenario("baseline"))
    calibration: Calibration = field(default_factory=load_calibration)
    start: date = DEFAULT_START

    def __post_init__(self) -> None:
        check_parameters(self.days, self.citizens, self.merchants)


def check_parameters(days: int, citizens: int, merchants: int) -> None:
    """Raises SandboxError for impossible run sizes."""
    if not 1 <= citizens <= CITIZENS_MAX:
        raise SandboxError(
            f"--citizens must be between 1 and {CITIZENS_MAX:,}, got {citizens}", "e.g. --citizens 10000"
        )
    if not 1 <= merchants <= MERCHANTS_MAX:
        raise SandboxError(
            f"--merchants must be between 1 and {MERCHANTS_MAX:,}, got {merchants}", "e.g. --merchants 1000"
        )
    if not 1 <= days <= DAYS_MAX:
        raise SandboxError(f"--days must be between 1 and {DAYS_MAX:,}, got {days}", "e.g. --days 30")


class Simulation:
    """One seeded run of the KP economy."""

    def __init__(self, config: SimulationConfig, *, emit_events: bool = True) -> None:
        """`emit_events=False` builds no event ids and none of the commonest records (openings,
        cash purchases, payment requests, agent cash): for `run_aggregates`."""
        self.config = config
        cal = config.calibration
        rng = random.Random(f"{config.seed}:population")
        self.citizens = build_citizens(cal, config.citizens, employer_count(cal, config.citizens), rng)
        self.merchants = build_merchants(cal, config.merchants, rng)
        self.institutions = build_institutions(cal, config.citizens, rng)
        self.registry = Registry(config.seed, cal, self.citizens, self.merchants)
        b = cal.behaviour
        self.calendar = Calendar(
            config.start, b["hour_weights"], b["weekday_multipliers"], b["payday_window_days"], b["payday_multiplier"]
        )
        self.stats = RunStats(self.registry.district_names)
        self.stats.bind(self.citizens)
        self.timestamps = Timestamps()
        # Event ids come from their own random stream, so a run that emits no events can skip
        # them without changing anything else (the aggregates stay the same).
        self.emit_events = emit_events
        self._ids = IdSource(config.seed) if emit_events else NoIds()
        self._rng = random.Random(f"{config.seed}:flows")
        self.economy = Economy(
            cal,
            config.scenario,
            self.calendar,
            self.citizens,
            self.merchants,
            self.institutions,
            self.registry,
            self._ids,
            self._rng,
            self.stats,
        )
        self.economy.emit_events = emit_events
        self._started = False

    @property
    def days(self) -> list[DayStats]:
        """Per-day aggregates so far (digital share by district, inclusion by gender, ...)."""
        return self.stats.days

    def batches(self) -> Iterator[list[Record]]:
        """Every event of the run in order, as lists of about BATCH_EVENTS records (a day's last
        list may be shorter). Sinks take whole lists: cheaper than one generator step per event.
        Each list is the caller's to keep. Call once."""
        if self._started:
            raise RuntimeError("a Simulation runs once; create a new one to run again")
        if not self.emit_events:
            raise RuntimeError("this Simulation was made with emit_events=False: use run_aggregates")
        self._started = True
        economy, out = self.economy, self.economy.out
        handlers = economy.handlers
        for index in range(self.config.days):
            day = self.calendar.day(index)
            yield self._openings(day)
            for intent in economy.plan_day(day):
                handlers[intent[1]](intent, day)  # Economy.execute, inlined: this is the hot loop
                if len(out) >= BATCH_EVENTS:
                    yield out[:]
                    out.clear()
            if out:
                yield out[:]
                out.clear()
            self.stats.close_day(day.date.isoformat(), self.citizens, self.merchants)

    def run_aggregates(self, report: Callable[[int, int], None] | None = None) -> RunStats:
        """Runs every day for its aggregates only (`stats`, `days`, `stats.panel`), building no
        event ids and dropping records as they come: the same aggregates as iterating `batches`
        with the same config, faster. Call once, on a Simulation made with `emit_events=False`
        (with events on it works too, only slower). `report(events, days_done)` is called after
        each day, as the sinks call theirs."""
        if self._started:
            raise RuntimeError("a Simulation runs once; create a new one to run again")
        self._started = True
        economy, out = self.economy, self.economy.out
        handlers = economy.handlers
        for index in range(self.config.days):
            day = self.calendar.day(index)
            self._openings(day)
            for intent in economy.plan_day(day):
                handlers[intent[1]](intent, day)
            out.clear()  # a day's records at most: nobody reads them
            self.stats.close_day(day.date.isoformat(), self.citizens, self.merchants)
            if report is not None:
                report(self.stats.total_events, index + 1)
        return self.stats

    def records(self) -> Iterator[Record]:
        """Every event of the run as a compact record, in deterministic order. Call once."""
        for batch in self.batches():
            yield from batch

    def events(self) -> Iterator[Envelope]:
        """Every event as a validated pydantic model (slower than `records`)."""
        for rec in self.records():
            yield rec.to_model(self.timestamps)

    def lines(self) -> Iterator[str]:
        """Every event as its JSON wire text (no newline)."""
        ts = self.timestamps
        for rec in self.records():
            yield rec.json(ts)

    def _openings(self, day: SimDay) -> list[Record]:
        """account.opened for everyone who gets an account today, at the first second of the day."""
        reg, ts, new_id = self.registry, day.start_ts, self._ids.next_uuid
        cal = self.config.calibration
        opened: list[Record] = []
        if day.index == 0:
            inst = self.institutions
            for g in range(len(GOVERNMENT)):
                opened.append(reg.institution_opened("government", g, government_district(cal, g), ts, new_id()))
            for b in range(len(BILLERS)):
                opened.append(reg.institution_opened("biller", b, biller_district(cal, b), ts, new_id()))
            for e, d in enumerate(inst.employer_district):
                opened.append(reg.institution_opened("employer", e, d, ts, new_id()))
            for a, d in enumerate(inst.agent_district):
                opened.append(reg.institution_opened("agent", a, d, ts, new_id()))
            merchants = [m for m in range(len(self.merchants)) if self.merchants.has_account[m]]
            citizens = list(self.citizens.holders)
        elif day.month_start:
            months = day.months_elapsed
            result = monthly_step(cal, self.config.scenario, self.citizens, self.merchants, months, self._rng)
            merchants, citizens = result.opened_merchants, result.opened_citizens
        else:
            return opened
        if not self.emit_events:
            # The same counts as the records below would give, without building them.
            self.stats.events_by_type["account.opened"] = (
                self.stats.events_by_type.get("account.opened", 0) + len(opened) + len(merchants) + len(citizens)
            )
            return []
        opened.extend(reg.merchant_opened(m, ts, new_id()) for m in merchants)
        opened.extend(reg.citizen_opened(i, ts, new_id()) for i in citizens)
        for rec in opened:
            self.stats.count_event(event_type_of(rec))
        return opened
