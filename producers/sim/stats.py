"""Aggregates of a run: events by type, digital share by count and value, inclusion by gender,
ticket sizes and the other series the fit report compares with the calibration targets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from producers.sim.calibration import GENDERS
from producers.sim.population import CASH_ONLY, Citizens

DIGITAL_FLOWS = ("p2p", "p2m", "bill", "ecommerce", "request_to_pay")


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
    """Running totals of one simulation; `days` holds one DayStats per simulated day."""

    districts: tuple[str, ...]
    events_by_type: dict[str, int] = field(default_factory=dict)
    digital_count: int = 0
    digital_value_paisa: int = 0
    cash_count: int = 0
    cash_value_paisa: int = 0
    digital_by_district: list[int] = field(default_factory=list)
    cash_by_district: list[int] = field(default_factory=list)
    digital_flows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIGITAL_FLOWS, 0))
    tickets: dict[str, Moments] = field(default_factory=dict)
    orders_prepaid: int = 0
    orders_cod: int = 0
    expected_exceeds_credits: int = 0
    expected_account_not_found: int = 0
    citizens_by_district: list[int] = field(default_factory=list)
    initial_inclusion: dict[str, float] = field(default_factory=dict)
    days: list[DayStats] = field(default_factory=list)
    _day_marks: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    _district_marks: tuple[list[int], list[int]] = ([], [])

    def __post_init__(self) -> None:
        n = len(self.districts)
        self.digital_by_district = [0] * n
        self.cash_by_district = [0] * n
        self._district_marks = ([0] * n, [0] * n)

    def count_event(self, event_type: str) -> None:
        self.events_by_type[event_type] = self.events_by_type.get(event_type, 0) + 1

    def digital(self, flow: str, district: int, amount: int) -> None:
        """A citizen paid digitally (a retail payment expected to succeed)."""
        self.digital_count += 1
        self.digital_value_paisa += amount
        self.digital_by_district[district] += 1
        self.digital_flows[flow] += 1

    def cash(self, event_type: str, district: int, amount: int) -> None:
        """A citizen paid in cash; the payment is one event of `event_type` (counted here too)."""
        self.events_by_type[event_type] = self.events_by_type.get(event_type, 0) + 1
        self.cash_count += 1
        self.cash_value_paisa += amount
        self.cash_by_district[district] += 1

    def ticket(self, series: str, amount: int) -> None:
        moments = self.tickets.get(series)
        if moments is None:
            moments = self.tickets[series] = Moments()
        moments.add(amount / 100)

    @property
    def total_events(self) -> int:
        return sum(self.events_by_type.values())

    def close_day(self, date: str, citizens: Citizens) -> DayStats:
        """Records the day just simulated (inclusion measured at the end of the day)."""
        inclusion, active = inclusion_by_gender(citizens)
        if not self.initial_inclusion:
            self.initial_inclusion = inclusion
        events, dc, dv, cc, cv = self._day_marks
        dd, cd = self._district_marks
        by_district = {}
        for k, name in enumerate(self.districts):
            digital = self.digital_by_district[k] - dd[k]
            cash = self.cash_by_district[k] - cd[k]
            by_district[name] = digital / (digital + cash) if digital + cash else 0.0
        day = DayStats(
            date=date,
            events=self.total_events - events,
            digital_count=self.digital_count - dc,
            digital_value_paisa=self.digital_value_paisa - dv,
            cash_count=self.cash_count - cc,
            cash_value_paisa=self.cash_value_paisa - cv,
            inclusion_by_gender=inclusion,
            active_share=active,
            digital_share_by_district=by_district,
        )
        self.days.append(day)
        self._day_marks = (
            self.total_events,
            self.digital_count,
            self.digital_value_paisa,
            self.cash_count,
            self.cash_value_paisa,
        )
        self._district_marks = (list(self.digital_by_district), list(self.cash_by_district))
        return day


def inclusion_by_gender(citizens: Citizens) -> tuple[dict[str, float], float]:
    """Share of men and women holding an account, and the share of all adults paying actively."""
    people = [0, 0]
    holders = [0, 0]
    active = 0
    gender, stage = citizens.gender, citizens.stage
    for i in range(len(citizens)):
        g = gender[i]
        people[g] += 1
        s = stage[i]
        if s != CASH_ONLY:
            holders[g] += 1
            active += s == 2
    shares = {GENDERS[g]: holders[g] / people[g] if people[g] else 0.0 for g in range(len(GENDERS))}
    shares["all"] = sum(holders) / max(1, sum(people))
    return shares, active / max(1, sum(people))
