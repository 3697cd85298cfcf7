"""Wallet-tier limits, pure: running totals per account and side, and the checks against them.

A tiered account (`account.opened` with a `tier`, limits in `schemas.accounts.TIER_LIMITS`)
carries two `Window`s, one for debits (money out) and one for credits (money in). A window holds
the day, month and year totals as of the simulated date `on` of the last transfer it counted;
a transfer dated later rolls the windows it moved past to zero (a new day zeroes the day total,
a new month the day and month totals, a new year all three), all in UTC. A transfer dated before
`on` (another payer's older clock, on another partition) counts toward the current windows:
windows never move backwards, so backdating never loosens a limit. Decisions therefore follow
from the stream order alone, like everything else the ledger decides.

Only transfers the ledger creates count, when they are created: a pending authorisation counts
its whole amount then, and a void, an expiry or a partial capture gives nothing back (the
simplest rule that can never let more through than the limits allow).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from schemas.accounts import TierLimits


@dataclass(slots=True)
class Window:
    """One side's running totals (paisa) of a tiered account, as of the simulated date `on`."""

    on: date | None = None
    day: int = 0
    month: int = 0
    year: int = 0

    def totals(self, on: date) -> tuple[int, int, int]:
        """(day, month, year) totals as they stand on `on`: windows `on` has moved past are 0."""
        last = self.on
        if last is None or on <= last:
            return self.day, self.month, self.year
        if on.year != last.year:
            return 0, 0, 0
        if on.month != last.month:
            return 0, 0, self.year
        return 0, self.month, self.year

    def count(self, on: date, amount: int) -> None:
        """Adds a created transfer's amount to the windows of `on` (rolling over first)."""
        day, month, year = self.totals(on)
        if self.on is None or on > self.on:
            self.on = on
        self.day, self.month, self.year = day + amount, month + amount, year + amount


@dataclass(slots=True)
class Tier:
    """A tiered account's limits and its two windows: debits (money out), credits (money in)."""

    limits: TierLimits
    debits: Window
    credits: Window


def check_window(limits: TierLimits, window: Window, at: datetime, amount: int) -> bool:
    """True when `amount` fits the per-transfer bound and the day, month and year totals."""
    if amount > limits.transfer_max:
        return False
    day, month, year = window.totals(at.date())
    return (
        day + amount <= limits.daily_max and month + amount <= limits.monthly_max and year + amount <= limits.yearly_max
    )


def check_balance_cap(limits: TierLimits, balance: int, amount: int) -> bool:
    """True when a credit of `amount` leaves the balance (incoming reservations included) within the cap."""
    return balance + amount <= limits.balance_max
