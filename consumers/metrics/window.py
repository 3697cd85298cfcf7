"""Rolling windows over *simulated* days: per-day buckets summed over the last N days.

Simulated time, not the wall clock, decides what is in a window, so the figures depend only on
the events and never on when (or how fast) they were read. `now` is the latest simulated day
seen. An event older than the window is ignored; since the window only moves forward, the
final figures do not depend on the order in which topics were read.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

WINDOW_DAYS: Final = 30
SECONDS_PER_DAY: Final = 86_400


def day_of(epoch_s: float) -> int:
    """Simulated day number (days since 1970-01-01 UTC) of an epoch time in seconds."""
    return int(epoch_s // SECONDS_PER_DAY)


class DayWindow:
    """Sums of (count, value) per key and simulated day, over the last `days` days."""

    def __init__(self, days: int = WINDOW_DAYS) -> None:
        self.days = days
        self.buckets: dict[int, dict[Hashable, list[int]]] = {}

    def first_day(self, now_day: int) -> int:
        """The oldest simulated day inside the window that ends on `now_day`."""
        return now_day - self.days + 1

    def add(self, day: int, now_day: int, key: Hashable, count: int, value: int) -> None:
        """Adds to one key on one day; ignored when the day is already outside the window."""
        if day < self.first_day(now_day):
            return
        entry = self.buckets.setdefault(day, {}).setdefault(key, [0, 0])
        entry[0] += count
        entry[1] += value

    def prune(self, now_day: int) -> None:
        """Forgets days that can never be inside the window again (memory stays bounded)."""
        first = self.first_day(now_day)
        for day in [d for d in self.buckets if d < first]:
            del self.buckets[day]

    def totals(self, now_day: int) -> dict[Hashable, list[int]]:
        """(count, value) per key over the window ending on `now_day`."""
        first = self.first_day(now_day)
        out: dict[Hashable, list[int]] = {}
        for day, keys in self.buckets.items():
            if first <= day <= now_day:
                for key, (count, value) in keys.items():
                    entry = out.setdefault(key, [0, 0])
                    entry[0] += count
                    entry[1] += value
        return out

    def to_json(self) -> list[list[object]]:
        """Plain lists for a snapshot: [[day, key..., count, value], ...] (keys are tuples)."""
        return [[day, *key, c, v] for day, keys in self.buckets.items() for key, (c, v) in keys.items()]  # type: ignore[misc]

    def load_json(self, rows: list[list[Any]]) -> None:
        """Restores what to_json wrote."""
        self.buckets = {}
        for row in rows:
            day, key, count, value = int(row[0]), tuple(row[1:-2]), int(row[-2]), int(row[-1])
            self.buckets.setdefault(day, {})[key] = [count, value]
