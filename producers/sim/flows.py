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


class Economy(OrderFlows, IncomeFlows):
    """Plans and executes each day's flows for one population."""

    @cached_property
    def handlers(self) -> tuple[Callable[[tuple, SimDay], None], ...]:
        """Each intent kind's flow, indexed by kind (PURCHASE, BILL, ... DELIVERY in `economy.py`)."""
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
        )

    # -- planning ---------------------------------------------------------------------------

    def plan_day(self, day: SimDay) -> list[tuple]:
        """The day's intents, sorted by time of day."""
        rng, c, r = self.rng, self.citizens, self.cal.rates
        n, holders = len(c), c.holders
        busy = self.calendar.activity(day)
        when, randrange, choice = self.calendar.second_of_day, rng.randrange, rng.choice
        start = day.start_ts
        intents: list[tuple] = self.scheduled.pop(day.index, [])
        add = intents.append
        # Each tuple's fields are drawn left to right: the order of random draws is the contract.
        # (`choice(seq)` draws exactly as `seq[randrange(len(seq))]` does.)
        draw_shop = self._shops.draw
        for _ in range(poisson_count(rng, n * r["purchases_per_citizen_day"] * busy)):
            add((start + when(rng), PURCHASE, randrange(n), draw_shop(rng)))
        for _ in range(poisson_count(rng, n * r["bills_per_citizen_day"] * busy)):
            add((start + when(rng), BILL, randrange(n), randrange(len(BILLERS))))
        if holders:
            for _ in range(poisson_count(rng, len(holders) * r["p2p_per_holder_day"] * busy)):
                add((start + when(rng), P2P, choice(holders), None))
            for _ in range(poisson_count(rng, len(holders) * r["request_to_pay_per_active_day"] * busy)):
                add((start + when(rng), RTP, choice(holders), None))
        for _ in range(poisson_count(rng, n * self._order_max * busy)):
            add((start + when(rng), ORDER, randrange(n), None))
        if day.month_start:
            for i in c.employed:
                add((start + 9 * 3600 + randrange(4 * 3600), WAGE, i, None))
        dom = day.date.day
        if day.date.month in G2P_MONTHS and G2P_FIRST_DAY <= dom < G2P_FIRST_DAY + G2P_SPREAD_DAYS:
            for i in c.g2p_recipients:
                if i % G2P_SPREAD_DAYS == dom - G2P_FIRST_DAY:
                    add((start + 8 * 3600 + randrange(8 * 3600), G2P, i, None))
        intents.sort(key=_BY_TIME)
        return intents

    def execute(self, intent: tuple, day: SimDay) -> None:
        """Executes one intent, appending its records to `out`."""
        self.handlers[intent[1]](intent, day)

    # -- retail flows ----------------------------------------------------------------------------

    def _purchase(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, category = intent
        c, m = self.citizens, self.merchants
        d = c.district[i]
        shop = self._shop(d, category)
        if shop is None:
            return
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
                    self.stats.ticket(f"p2m_{name}", amount)
                else:
                    self.mark(eid, INTENDED_INSUFFICIENT_FUNDS)
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
        payee = self.rng.choice(c.holders)
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
