"""The economy's daily flows: who pays whom, how, and when, emitted as event records.

A day is planned as a list of intents `(second, kind, citizen, extra)`, sorted by time (a
stable sort, so ties keep their deterministic planning order) and then executed in order
against the simulation's own view of balances. Execution appends records to `out`; the engine
drains it as it goes, so a day's events are never all held in memory at once.

This module plans the day and runs the retail flows (shop purchases, bills, person-to-person
payments, requests to pay); `orders.py` runs e-commerce and `income.py` wages, G2P and cash-outs.
Shared state and payment helpers live in `economy.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from operator import itemgetter

from producers.sim.calendar import SimDay, poisson_count
from producers.sim.calibration import MERCHANT_CATEGORIES
from producers.sim.economy import (
    BILL,
    G2P,
    INTENDED_INSUFFICIENT_FUNDS,
    INTENDED_UNKNOWN_PAYEE,
    ORDER,
    P2P,
    PURCHASE,
    RTP,
    WAGE,
)
from producers.sim.income import G2P_FIRST_DAY, G2P_MONTHS, G2P_SPREAD_DAYS, IncomeFlows
from producers.sim.orders import OrderFlows
from producers.sim.population import ACTIVE, BILLERS, CASH_ONLY, DYNAMIC_QR

_BY_TIME = itemgetter(0)
_P2M_SERIES = tuple(f"p2m_{name}" for name in MERCHANT_CATEGORIES)  # ticket series by category


class Economy(OrderFlows, IncomeFlows):
    """Plans and executes each day's flows for one population."""

    @cached_property
    def handlers(self) -> tuple[Callable[[tuple, SimDay], None], ...]:
        """Each intent kind's flow, indexed by kind (PURCHASE, BILL, ... RELEASE in `economy.py`)."""
        return (
            self._purchase,
            self._bill,
            self._p2p,
            self._rtp,
            self._order,
            self._wage,
            self._g2p,
            self._cash_out_now,
            self._dispatch,
            self._delivery,
            self._release,
        )

    # -- planning ---------------------------------------------------------------------------

    def plan_day(self, day: SimDay) -> list[tuple]:
        """The day's intents, sorted by time of day."""
        rng, c, r = self.rng, self.citizens, self.cal.rates
        n, holders = len(c), c.holders
        busy = self.calendar.activity(day)
        times, random = self.calendar.times_of_day, rng.random
        start = day.start_ts
        intents: list[tuple] = self.scheduled.pop(day.index, [])
        # Each kind's intents are drawn in blocks (all the times, then all the citizens, then all
        # the extras): the order of random draws is the contract. For speed a citizen is drawn as
        # `int(random() * n)`, at half the cost of randrange(n) (pure Python in CPython 3.11), and
        # a holder as `holders[int(random() * h)]` rather than by choice(holders).
        count = poisson_count(rng, n * r["purchases_per_citizen_day"] * busy)
        when = times(rng, count, start)
        who = [int(random() * n) for _ in range(count)]
        shops = self._shops.draws(rng, count)
        intents += [(t, PURCHASE, i, k) for t, i, k in zip(when, who, shops, strict=True)]
        count = poisson_count(rng, n * r["bills_per_citizen_day"] * busy)
        when, who = times(rng, count, start), [int(random() * n) for _ in range(count)]
        intents += [(t, BILL, i, int(random() * len(BILLERS))) for t, i in zip(when, who, strict=True)]
        if holders:
            h = len(holders)
            count = poisson_count(rng, h * r["p2p_per_holder_day"] * busy)
            when = times(rng, count, start)
            intents += [(t, P2P, holders[int(random() * h)], None) for t in when]
            count = poisson_count(rng, h * r["request_to_pay_per_active_day"] * busy)
            when = times(rng, count, start)
            intents += [(t, RTP, holders[int(random() * h)], None) for t in when]
        count = poisson_count(rng, n * self._order_max * busy)
        when = times(rng, count, start)
        intents += [(t, ORDER, int(random() * n), None) for t in when]
        if day.month_start:
            for i in c.employed:
                intents.append((start + 9 * 3600 + int(random() * 4 * 3600), WAGE, i, None))
        dom = day.date.day
        if day.date.month in G2P_MONTHS and G2P_FIRST_DAY <= dom < G2P_FIRST_DAY + G2P_SPREAD_DAYS:
            for i in c.g2p_recipients:
                if i % G2P_SPREAD_DAYS == dom - G2P_FIRST_DAY:
                    intents.append((start + 8 * 3600 + int(random() * 8 * 3600), G2P, i, None))
        intents.sort(key=_BY_TIME)
        return intents

    def execute(self, intent: tuple, day: SimDay) -> None:
        """Executes one intent, appending its records to `out`."""
        self.handlers[intent[1]](intent, day)

    # -- retail flows ----------------------------------------------------------------------------

    def _purchase(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, category = intent
        c, m = self.citizens, self.merchants
        # `self._shop(...)`, inlined: this is the commonest intent by far.
        pool = self._shop_pools[c.district[i] * len(MERCHANT_CATEGORIES) + category]
        if not pool:
            return
        shop = pool[int(self._random() * len(pool))]
        name = MERCHANT_CATEGORIES[category]
        amount = self.amount(name)
        stage = c.stage[i]
        has_qr = m.has_account[shop]
        if stage != CASH_ONLY and has_qr and self._random() < self._qr_use[stage]:
            verdict = self._afford(i, amount, ts)
            if verdict:
                qr = "p2m_dynamic_qr" if m.instruments[shop] & DYNAMIC_QR and self._random() < 0.5 else "p2m_static_qr"
                eid = self._pay(qr, self._rail(i, "raast"), i, self.reg.merchant_account(shop), amount, ts)
                if verdict > 0:
                    c.balance[i] -= amount
                    self.stats.digital("p2m", i, amount)
                    self.stats.ticket(_P2M_SERIES[category], amount)
                else:
                    self.mark(eid, INTENDED_INSUFFICIENT_FUNDS)
                return
        if not self.emit_events:  # aggregate-only: no record, so no merchant account id to look up
            self.stats.cash("cash.purchase", i, amount)
            return
        self._cash_purchase(i, self.reg.merchant_account(shop) if has_qr else None, name, amount, ts)

    def _bill(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, biller = intent
        c = self.citizens
        amount = self.amount("bill")
        stage = c.stage[i]
        account = self.reg.biller_account(biller)
        if stage != CASH_ONLY and self._random() < self._bill_digital[stage]:
            verdict = self._afford(i, amount, ts)
            if verdict:
                ref = f"{BILLERS[biller][0]}-{self.rng.getrandbits(32):010d}"
                eid = self._pay("bill_payment", self._rail(i, "bank"), i, account, amount, ts, ref)
                if verdict > 0:
                    c.balance[i] -= amount
                    self.stats.digital("bill", i, amount)
                    self.stats.ticket("bill", amount)
                else:
                    self.mark(eid, INTENDED_INSUFFICIENT_FUNDS)
                return
        self._cash_purchase(i, account, "utility", amount, ts)

    def _p2p(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c = self.citizens
        amount = self.amount("p2p")
        if self._random() < self.cal.behaviour["unknown_payee_probability"]:
            self._unknown_counter += 1
            eid = self._pay("p2p", "raast", i, self.reg.unknown_account(self._unknown_counter), amount, ts)
            self.stats.expected_account_not_found += 1
            self.mark(eid, INTENDED_UNKNOWN_PAYEE)
            return
        payee = c.holders[int(self._random() * len(c.holders))]  # choice(holders), cheaper
        if payee == i:
            return
        verdict = self._afford(i, amount, ts)
        if not verdict:
            return
        eid = self._pay("p2p", "raast", i, self.reg.citizen_account(payee), amount, ts)
        if verdict > 0:
            c.balance[i] -= amount
            c.balance[payee] += amount
            self.stats.digital("p2p", i, amount)
            self.stats.ticket("p2p", amount)
        else:
            self.mark(eid, INTENDED_INSUFFICIENT_FUNDS)

    def _rtp(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c = self.citizens
        if c.stage[i] != ACTIVE:
            return
        shop = self._shop(c.district[i], self._shops.draw(self.rng))
        if shop is None or not self.merchants.has_account[shop]:
            return
        amount = self.amount("request_to_pay")
        verdict = self._afford(i, amount, ts)
        if not verdict:
            return
        eid = self._pay("request_to_pay", "raast", i, self.reg.merchant_account(shop), amount, ts)
        if verdict > 0:
            c.balance[i] -= amount
            self.stats.digital("request_to_pay", i, amount)
        else:
            self.mark(eid, INTENDED_INSUFFICIENT_FUNDS)
