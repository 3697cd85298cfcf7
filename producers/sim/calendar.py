"""Simulated time: days, weekdays, month starts, paydays and the hour-of-day profile.

Time is integer seconds since the Unix epoch in UTC, counted from a fixed start date; nothing
here reads the wall clock.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Final

DAY_S: Final = 86_400
DEFAULT_START: Final = date(2026, 1, 1)


@dataclass(frozen=True)
class SimDay:
    """One simulated day and what the calendar says about it."""

    index: int
    date: date
    start_ts: int

    @property
    def weekday(self) -> int:
        """0 is Monday."""
        return self.date.weekday()

    @property
    def month_start(self) -> bool:
        """The first day of a calendar month: the adoption step and wages happen then."""
        return self.date.day == 1

    @property
    def months_elapsed(self) -> float:
        """Months since the first simulated day (for yearly lever growth)."""
        return self.index / 30.44


class Calendar:
    """Maps day indices to dates and draws times of day from the calibrated hour profile."""

    def __init__(
        self,
        start: date,
        hour_weights: list[float],
        weekday_multipliers: list[float],
        payday_window_days: int,
        payday_multiplier: float,
    ) -> None:
        if len(hour_weights) != 24 or len(weekday_multipliers) != 7:
            raise ValueError("need 24 hour weights and 7 weekday multipliers")
        self.start = start
        self._start_ts = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        total = sum(hour_weights)
        self._hour_cdf = [w / total for w in accumulate(hour_weights)]
        self._hour_cdf[-1] = 1.0  # so every draw (random() < 1) lands on an hour 0..23
        # Where each hour's slice of the CDF starts, and seconds per unit of probability in it:
        # one draw gives both the hour and, by its place inside the hour's slice, the second.
        self._hour_low = [0.0, *self._hour_cdf[:-1]]
        self._hour_scale = [
            3600 / (high - low) if high > low else 0.0 for low, high in zip(self._hour_low, self._hour_cdf, strict=True)
        ]
        self._weekday = weekday_multipliers
        self._payday_days = payday_window_days
        self._payday_multiplier = payday_multiplier

    def day(self, index: int) -> SimDay:
        """The simulated day `index` days after the start."""
        return SimDay(index, self.start + timedelta(days=index), self._start_ts + index * DAY_S)

    def activity(self, day: SimDay) -> float:
        """How busy the day is relative to an ordinary weekday (weekly cycle and payday bump)."""
        multiplier = self._weekday[day.weekday]
        if day.date.day <= self._payday_days:
            multiplier *= self._payday_multiplier
        return multiplier

    def second_of_day(self, rng: random.Random) -> int:
        """A time of day in seconds, following the hour-of-day profile, from one random draw."""
        draw = rng.random()
        hour = bisect_right(self._hour_cdf, draw)
        # A draw inside an hour's slice of the CDF is uniform there; scaled, it is the second in
        # the hour (at most 3599: rounding could give 3600 for a draw just below the slice's end).
        second = int((draw - self._hour_low[hour]) * self._hour_scale[hour])
        return hour * 3600 + (second if second < 3600 else 3599)

    def times_of_day(self, rng: random.Random, count: int, day_start: int) -> list[int]:
        """`count` timestamps on the day starting at `day_start`, each drawn as `second_of_day`
        draws one (in one call: planning a day draws thousands)."""
        cdf, low, scale = self._hour_cdf, self._hour_low, self._hour_scale
        times = []
        for draw in [rng.random() for _ in range(count)]:
            hour = bisect_right(cdf, draw)
            second = int((draw - low[hour]) * scale[hour])
            times.append(day_start + hour * 3600 + (second if second < 3600 else 3599))
        return times


def poisson_count(rng: random.Random, expected: float) -> int:
    """An integer count with the given mean: the floor plus a Bernoulli draw for the fraction.

    Cheaper than a Poisson draw for the large daily totals used here, and its variance is small
    enough not to distort the calibrated rates.
    """
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)
