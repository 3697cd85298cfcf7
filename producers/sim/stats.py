"""Aggregates of a run: events by type, digital share by count and value, inclusion by gender,
ticket sizes and the other series the fit report compares with the calibration targets."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import date as _date
from typing import Final

from producers.sim.calibration import GENDERS
from producers.sim.panel_rows import ACTIVE_WINDOW_DAYS, PanelRows
from producers.sim.population import ACTIVE, HOLDER, Citizens, Merchants

DIGITAL_FLOWS = ("p2p", "p2m", "bill", "ecommerce", "request_to_pay")
NEVER: Final = -(2**31)  # "last digital payment day" of a citizen who never paid digitally


@dataclass
class Moments:
    """Count, sum and sum of squares of a series of amounts (in rupees)."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, rupees: float) -> None:
        self.count += 1
        self.total += rupees
        self.squares += rupees * rupees

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        if self.count < 2:
            return 0.0
        return math.sqrt(max(0.0, self.squares / self.count - self.mean**2))


@dataclass(frozen=True)
class DayStats:
    """One simulated day, for charts: digital share, inclusion by gender, by district."""

    date: str
    events: int
    digital_count: int
    digital_value_paisa: int
    cash_count: int
    cash_value_paisa: int
    inclusion_by_gender: dict[str, float]
    active_share: float
    digital_share_by_district: dict[str, float]

    @property
    def digital_share_by_count(self) -> float:
        total = self.digital_count + self.cash_count
        return self.digital_count / total if total else 0.0

    @property
    def digital_share_by_value(self) -> float:
        total = self.digital_value_paisa + self.cash_value_paisa
        return self.digital_value_paisa / total if total else 0.0


@dataclass
class RunStats:
    """Running totals of one simulation; `days` holds one DayStats per simulated day and `panel`
    one row per day × district × gender (see panel.py).

    Payments are counted per *cell* (district × gender, cell k = district * len(GENDERS) + gender)
    of the paying citizen; `bind` must be called with the population before the first payment.
    """

    districts: tuple[str, ...]
    events_by_type: dict[str, int] = field(default_factory=dict)
    digital_flows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIGITAL_FLOWS, 0))
    tickets: dict[str, Moments] = field(default_factory=dict)
    orders_prepaid: int = 0
    orders_abandoned: int = 0  # prepaid orders nobody ships or cancels: their authorisations expire
    orders_cod: int = 0
    expected_exceeds_credits: int = 0
    expected_account_not_found: int = 0
    citizens_by_district: list[int] = field(default_factory=list)
    initial_inclusion: dict[str, float] = field(default_factory=dict)
    days: list[DayStats] = field(default_factory=list)
    panel: PanelRows = field(init=False)
    _cell: array = field(init=False)  # cell of each citizen
    _adults: list[int] = field(init=False)  # adults per cell
    # Today's digital and cash payments per cell (count, value); closed days are in `_closed`.
    _digital_counts: list[int] = field(init=False)
    _digital_values: list[int] = field(init=False)
    _cash_counts: list[int] = field(init=False)
    _cash_values: list[int] = field(init=False)
    _closed: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # totals of closed days, same order
    _active: list[int] = field(init=False)  # active digital payers (last ACTIVE_WINDOW_DAYS) per cell
    _last_digital: array = field(init=False)  # day index of each citizen's last digital payment
    _first_payers: list[int] = field(default_factory=list)  # citizens paying digitally for the first time today
    _payers_by_day: dict[int, list[int]] = field(default_factory=dict)
    _today: int = 0
    _events_mark: int = 0
    _stages_counted: bytes = b""  # the citizens' stages when `_by_stage` was counted
    _by_stage: Counter = field(default_factory=Counter)  # citizens by (cell, stage) at that time

    def __post_init__(self) -> None:
        self.panel = PanelRows(self.districts, GENDERS)
        self.bind_cells(array("H"))

    def bind(self, citizens: Citizens) -> None:
        """Takes the population's districts and genders (fixed for the run) before the first day."""
        genders = len(GENDERS)
        self.bind_cells(array("H", (d * genders + g for d, g in zip(citizens.district, citizens.gender, strict=True))))
        self.citizens_by_district = [0] * len(self.districts)
        for d in citizens.district:
            self.citizens_by_district[d] += 1

    def bind_cells(self, cells: array) -> None:
        """Resets the per-cell state for a population whose citizen i lives in cell cells[i]."""
        n = len(self.districts) * len(GENDERS)
        self._cell = cells
        self._stages_counted, self._by_stage = b"", Counter()
        self._adults = [0] * n
        for k in cells:
            self._adults[k] += 1
        self._zero_today(n)
        self._active = [0] * n
        self._last_digital = array("i", [NEVER]) * len(cells)

    def count_event(self, event_type: str) -> None:
        self.events_by_type[event_type] = self.events_by_type.get(event_type, 0) + 1

    def _zero_today(self, cells: int) -> None:
        self._digital_counts, self._digital_values = [0] * cells, [0] * cells
        self._cash_counts, self._cash_values = [0] * cells, [0] * cells

    @property
    def digital_count(self) -> int:
        """Digital retail payments so far (expected to succeed)."""
        return self._closed[0] + sum(self._digital_counts)

    @property
    def digital_value_paisa(self) -> int:
        return self._closed[1] + sum(self._digital_values)

    @property
    def cash_count(self) -> int:
        """Cash retail payments so far."""
        return self._closed[2] + sum(self._cash_counts)

    @property
    def cash_value_paisa(self) -> int:
        return self._closed[3] + sum(self._cash_values)

    # digital() and cash() run once per retail payment: per-cell lists only, totals summed on demand.

    def digital(self, flow: str, citizen: int, amount: int) -> None:
        """Citizen paid digitally (a retail payment expected to succeed)."""
        self.digital_flows[flow] += 1
        k = self._cell[citizen]
        self._digital_counts[k] += 1
        self._digital_values[k] += amount
        last, today = self._last_digital, self._today
        if last[citizen] != today:
            if last[citizen] <= today - ACTIVE_WINDOW_DAYS:
                self._active[k] += 1
            last[citizen] = today
            self._first_payers.append(citizen)

    def cash(self, event_type: str, citizen: int, amount: int) -> None:
        """Citizen paid in cash; the payment is one event of `event_type` (counted here too)."""
        types = self.events_by_type
        types[event_type] = types.get(event_type, 0) + 1
        k = self._cell[citizen]
        self._cash_counts[k] += 1
        self._cash_values[k] += amount

    def ticket(self, series: str, amount: int) -> None:
        moments = self.tickets.get(series)
        if moments is None:
            moments = self.tickets[series] = Moments()
        moments.add(amount / 100)

    @property
    def total_events(self) -> int:
        return sum(self.events_by_type.values())

    def close_day(self, date: str, citizens: Citizens, merchants: Merchants) -> DayStats:
        """Records the day just simulated (accounts measured at the end of the day)."""
        genders = len(GENDERS)
        n = len(self._adults)
        by_stage = self._stage_counts(citizens)
        holders = [by_stage[k, HOLDER] + by_stage[k, ACTIVE] for k in range(n)]
        adults_g = [sum(self._adults[g::genders]) for g in range(genders)]
        holders_g = [sum(holders[g::genders]) for g in range(genders)]
        inclusion = {GENDERS[g]: holders_g[g] / adults_g[g] if adults_g[g] else 0.0 for g in range(genders)}
        inclusion["all"] = sum(holders_g) / max(1, sum(adults_g))
        active_stage = sum(count for (_, stage), count in by_stage.items() if stage == ACTIVE)
        if not self.initial_inclusion:
            self.initial_inclusion = inclusion
        dc, dv, cc, cv = self._digital_counts, self._digital_values, self._cash_counts, self._cash_values
        by_district = {}
        for d, name in enumerate(self.districts):
            digital, cash = sum(dc[d * genders : (d + 1) * genders]), sum(cc[d * genders : (d + 1) * genders])
            by_district[name] = digital / (digital + cash) if digital + cash else 0.0
        by_account = Counter(zip(merchants.district, merchants.has_account, strict=True))
        merchants_all = [by_account[d, 0] + by_account[d, 1] for d in range(len(self.districts))]
        merchants_digital = [by_account[d, 1] for d in range(len(self.districts))]
        cells = {
            "adults": self._adults,
            "account_holders": holders,
            "active_digital_payers_30d": self._active,
            "digital_count": dc,
            "digital_value_paisa": dv,
            "cash_count": cc,
            "cash_value_paisa": cv,
        }
        self.panel.add_day(_date.fromisoformat(date), self._today, cells, merchants_all, merchants_digital)
        total = self.total_events
        day = DayStats(
            date=date,
            events=total - self._events_mark,
            digital_count=sum(dc),
            digital_value_paisa=sum(dv),
            cash_count=sum(cc),
            cash_value_paisa=sum(cv),
            inclusion_by_gender=inclusion,
            active_share=active_stage / max(1, len(citizens)),
            digital_share_by_district=by_district,
        )
        self.days.append(day)
        self._events_mark = total
        self._next_day(n)
        return day

    def _stage_counts(self, citizens: Citizens) -> Counter:
        """Citizens by (cell, stage). Stages change on few days (month starts, G2P days), so they
        are counted again only when they differ from the last count's (one byte comparison)."""
        stages = citizens.stage.tobytes()
        if stages != self._stages_counted:
            self._by_stage = Counter(zip(self._cell, citizens.stage, strict=True))
            self._stages_counted = stages
        return self._by_stage

    def _next_day(self, cells: int) -> None:
        """Starts a new day: zero today's counters; payers whose last digital day leaves the window
        stop counting as active."""
        for k, today in enumerate((self._digital_counts, self._digital_values, self._cash_counts, self._cash_values)):
            self._closed[k] += sum(today)
        self._zero_today(cells)
        self._payers_by_day[self._today] = self._first_payers
        self._first_payers = []
        leaving = self._today - ACTIVE_WINDOW_DAYS + 1
        last, cell, active = self._last_digital, self._cell, self._active
        for i in self._payers_by_day.pop(leaving, ()):
            if last[i] == leaving:
                active[cell[i]] -= 1
        self._today += 1
