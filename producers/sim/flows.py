"""The economy's daily flows: who pays whom, how, and when, emitted as event records.

A day is planned as a list of intents `(second, kind, citizen, extra)`, sorted by time (a
stable sort, so ties keep their deterministic planning order) and then executed in order
against the simulation's own view of balances. Execution appends records to `out`; the engine
drains it after each intent so a day's events are never all held in memory at once.
"""

from __future__ import annotations

import math
import random
from operator import itemgetter
from typing import Final

from producers.sim.calendar import DAY_S, Calendar, SimDay, poisson_count
from producers.sim.calibration import MERCHANT_CATEGORIES, SHOP_CATEGORIES, Calibration
from producers.sim.identifiers import IdSource
from producers.sim.population import (
    ACTIVE,
    BANK,
    BILLERS,
    CASH_ONLY,
    DYNAMIC_QR,
    G2P_RECIPIENT,
    URBAN,
    Citizens,
    Institutions,
    Merchants,
    Sampler,
    open_account,
)
from producers.sim.records import (
    AgentCashRec,
    CashPurchaseRec,
    OrderRec,
    PaymentRequestedRec,
    PostRequestedRec,
    Record,
    VoidRequestedRec,
)
from producers.sim.registry import Registry
from producers.sim.scenario import Scenario
from producers.sim.stats import RunStats

_ECOMMERCE: Final = MERCHANT_CATEGORIES.index("ecommerce")
PURCHASE, BILL, P2P, RTP, ORDER, WAGE, G2P, CASH_OUT, DISPATCH, DELIVERY = range(10)
ORDER_TIMEOUT_S: Final = 7 * DAY_S
G2P_MONTHS: Final = (1, 4, 7, 10)  # quarterly instalments (assumption)
G2P_FIRST_DAY: Final = 10
G2P_SPREAD_DAYS: Final = 5
STAGE_KEY: Final = ("holder", "holder", "active")
_BY_TIME = itemgetter(0)


class Economy:
    """Plans and executes each day's flows for one population."""

    def __init__(
        self,
        cal: Calibration,
        scenario: Scenario,
        calendar: Calendar,
        citizens: Citizens,
        merchants: Merchants,
        institutions: Institutions,
        registry: Registry,
        ids: IdSource,
        rng: random.Random,
        stats: RunStats,
    ) -> None:
        self.cal, self.calendar, self.rng, self.ids, self.stats = cal, calendar, rng, ids, stats
        self.citizens, self.merchants, self.inst, self.reg = citizens, merchants, institutions, registry
        self.levers = scenario.levers
        self.out: list[Record] = []
        self.scheduled: dict[int, list[tuple]] = {}
        self._shops = Sampler([1.0 if c in SHOP_CATEGORIES else 0.0 for c in MERCHANT_CATEGORIES])
        self._tickets = {name: (math.log(t.mean_rupees) - t.sigma**2 / 2, t.sigma) for name, t in cal.tickets.items()}
        b, r = cal.behaviour, cal.rates
        self._qr_use = [min(0.98, p * self.levers.incentives) for p in _by_stage(b["qr_use_probability"])]
        self._bill_digital = [min(0.98, p * self.levers.incentives) for p in _by_stage(b["bill_digital_probability"])]
        self._cash_out = _by_stage(b["cash_out_after_receipt"])
        self._prepaid = _by_stage(b["prepaid_share_of_orders"])
        self._orders = r["orders_per_citizen_day"]
        self._order_max = max(self._orders.values())
        self._rng_random = rng.random
        self._start_ts = calendar.day(0).start_ts
        self._order_counter = 0
        self._unknown_counter = 0
        self.handlers = (
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
        when = self.calendar.second_of_day
        start = day.start_ts
        intents: list[tuple] = self.scheduled.pop(day.index, [])
        for _ in range(poisson_count(rng, n * r["purchases_per_citizen_day"] * busy)):
            intents.append((start + when(rng), PURCHASE, rng.randrange(n), self._shops.draw(rng)))
        for _ in range(poisson_count(rng, n * r["bills_per_citizen_day"] * busy)):
            intents.append((start + when(rng), BILL, rng.randrange(n), rng.randrange(len(BILLERS))))
        if holders:
            for _ in range(poisson_count(rng, len(holders) * r["p2p_per_holder_day"] * busy)):
                intents.append((start + when(rng), P2P, holders[rng.randrange(len(holders))], None))
            for _ in range(poisson_count(rng, len(holders) * r["request_to_pay_per_active_day"] * busy)):
                intents.append((start + when(rng), RTP, holders[rng.randrange(len(holders))], None))
        for _ in range(poisson_count(rng, n * self._order_max * busy)):
            intents.append((start + when(rng), ORDER, rng.randrange(n), None))
        if day.month_start:
            for i in c.employed:
                intents.append((start + 9 * 3600 + rng.randrange(4 * 3600), WAGE, i, None))
        dom = day.date.day
        if day.date.month in G2P_MONTHS and G2P_FIRST_DAY <= dom < G2P_FIRST_DAY + G2P_SPREAD_DAYS:
            for i in c.g2p_recipients:
                if i % G2P_SPREAD_DAYS == dom - G2P_FIRST_DAY:
                    intents.append((start + 8 * 3600 + rng.randrange(8 * 3600), G2P, i, None))
        intents.sort(key=_BY_TIME)
        return intents

    def schedule(self, day_index: int, intent: tuple) -> None:
        """Plans a follow-up (capture, delivery, cash-out) on a later day."""
        self.scheduled.setdefault(day_index, []).append(intent)

    def execute(self, intent: tuple, day: SimDay) -> None:
        """Executes one intent, appending its records to `out`."""
        self.handlers[intent[1]](intent, day)

    # -- helpers ------------------------------------------------------------------------------

    def amount(self, flow: str) -> int:
        """A ticket in paisa, rounded to whole rupees (at least Rs 10)."""
        mu, sigma = self._tickets[flow]
        rupees = self.rng.lognormvariate(mu, sigma) if sigma else math.exp(mu)
        return max(10, min(5_000_000, round(rupees))) * 100

    def _afford(self, i: int, amount: int, ts: int) -> int:
        """Whether citizen i pays `amount` now: 1 yes, 0 no (falls back), -1 tries and will fail.

        Short of funds, a citizen usually cashes in first at an agent (emitted here), sometimes
        pays anyway (the ledger rejects it: exceeds_credits), otherwise gives up digitally.
        """
        balance = self.citizens.balance[i]
        if balance >= amount:
            return 1
        draw = self._rng_random()
        b = self.cal.behaviour
        if draw < b["pay_without_funds_probability"]:
            self.stats.expected_exceeds_credits += 1
            return -1
        if draw < b["top_up_before_paying"]:
            needed = amount - balance
            top_up = max(needed, self.amount("cash_in"))
            top_up = -(-top_up // 50_000) * 50_000  # round up to Rs 500
            self._cash(True, i, top_up, ts)
            return 1
        return 0

    def _cash(self, cash_in: bool, i: int, amount: int, ts: int) -> None:
        c = self.citizens
        agents = self.inst.agents_by_district[c.district[i]]
        agent = agents[self.rng.randrange(len(agents))]
        eid = self.ids.next_uuid()
        self.out.append(
            AgentCashRec(eid, ts, eid, cash_in, self.reg.citizen_account(i), self.reg.agent_account(agent), amount)
        )
        c.balance[i] += amount if cash_in else -amount
        self.stats.count_event("cash.in" if cash_in else "cash.out")

    def _pay(self, kind: str, rail: str, i: int, payee: str, amount: int, ts: int, ref: str | None = None) -> str:
        eid = self.ids.next_uuid()
        self.out.append(
            PaymentRequestedRec(
                eid, ts, eid, kind, rail, self.reg.citizen_account(i), payee, amount, False, 0, None, ref
            )
        )
        self.stats.count_event("payment.requested")
        return eid

    def _cash_purchase(self, i: int, merchant_account: str | None, category: str, amount: int, ts: int) -> None:
        c = self.citizens
        eid = self.ids.next_uuid()
        d = c.district[i]
        self.out.append(
            CashPurchaseRec(
                eid, ts, eid, self.reg.citizen_holder(i), merchant_account, category, self.reg.district_names[d], amount
            )
        )
        self.stats.count_event("cash.purchase")
        self.stats.cash(d, amount)

    def _shop(self, district: int, category: int) -> int | None:
        m = self.merchants
        pool = m.by_district_category.get((district, category)) or m.by_category.get(category)
        return pool[self.rng.randrange(len(pool))] if pool else None

    def _rail(self, i: int, bank_rail: str) -> str:
        return bank_rail if self.citizens.account[i] == BANK else "wallet"

    # -- flows ---------------------------------------------------------------------------------

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
        if stage != CASH_ONLY and has_qr and self._rng_random() < self._qr_use[stage]:
            verdict = self._afford(i, amount, ts)
            if verdict:
                qr = (
                    "p2m_dynamic_qr"
                    if m.instruments[shop] & DYNAMIC_QR and self._rng_random() < 0.5
                    else "p2m_static_qr"
                )
                self._pay(qr, self._rail(i, "raast"), i, self.reg.merchant_account(shop), amount, ts)
                if verdict > 0:
                    c.balance[i] -= amount
                    self.stats.digital("p2m", d, amount)
                    self.stats.ticket(f"p2m_{name}", amount)
                return
        self._cash_purchase(i, self.reg.merchant_account(shop) if has_qr else None, name, amount, ts)

    def _bill(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, biller = intent
        c = self.citizens
        amount = self.amount("bill")
        stage = c.stage[i]
        account = self.reg.biller_account(biller)
        if stage != CASH_ONLY and self._rng_random() < self._bill_digital[stage]:
            verdict = self._afford(i, amount, ts)
            if verdict:
                ref = f"{BILLERS[biller][0]}-{self.rng.getrandbits(32):010d}"
                self._pay("bill_payment", self._rail(i, "bank"), i, account, amount, ts, ref)
                if verdict > 0:
                    c.balance[i] -= amount
                    self.stats.digital("bill", c.district[i], amount)
                    self.stats.ticket("bill", amount)
                return
        self._cash_purchase(i, account, "utility", amount, ts)

    def _p2p(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c = self.citizens
        amount = self.amount("p2p")
        if self._rng_random() < self.cal.behaviour["unknown_payee_probability"]:
            self._unknown_counter += 1
            self._pay("p2p", "raast", i, self.reg.unknown_account(self._unknown_counter), amount, ts)
            self.stats.expected_account_not_found += 1
            return
        holders = c.holders
        payee = holders[self.rng.randrange(len(holders))]
        if payee == i:
            return
        verdict = self._afford(i, amount, ts)
        if not verdict:
            return
        self._pay("p2p", "raast", i, self.reg.citizen_account(payee), amount, ts)
        if verdict > 0:
            c.balance[i] -= amount
            c.balance[payee] += amount
            self.stats.digital("p2p", c.district[i], amount)
            self.stats.ticket("p2p", amount)

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
        self._pay("request_to_pay", "raast", i, self.reg.merchant_account(shop), amount, ts)
        if verdict > 0:
            c.balance[i] -= amount
            self.stats.digital("request_to_pay", c.district[i], amount)

    def _order(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c, rng = self.citizens, self.rng
        area = "urban" if c.area[i] == URBAN else "rural"
        if self._rng_random() * self._order_max >= self._orders[area]:
            return
        seller = self._shop(c.district[i], _ECOMMERCE)
        if seller is None:
            return
        amount = self.amount("ecommerce")
        self._order_counter += 1
        order_id = self.reg.order_id(self._order_counter)
        corr = self.ids.next_uuid()
        buyer, seller_acc, district = (
            self.reg.citizen_holder(i),
            self.reg.merchant_account(seller),
            self.reg.district_names[c.district[i]],
        )
        prepaid = self._rng_random() < self._prepaid[c.stage[i]]
        if prepaid and self._afford(i, amount, ts) <= 0:
            prepaid = False
        method = "prepaid" if prepaid else "cash_on_delivery"
        self.out.append(
            OrderRec(
                self.ids.next_uuid(),
                ts,
                corr,
                "order.placed",
                order_id,
                buyer,
                seller_acc,
                amount,
                method,
                district,
                None,
                None,
            )
        )
        self.stats.count_event("order.placed")
        cancel = self._rng_random() < self.cal.behaviour["order_cancel_share"]
        if prepaid:
            payer = self.reg.citizen_account(i)
            pid = self.ids.next_uuid()
            self.out.append(
                PaymentRequestedRec(
                    pid,
                    ts,
                    corr,
                    "ecommerce",
                    self._rail(i, "card"),
                    payer,
                    seller_acc,
                    amount,
                    True,
                    ORDER_TIMEOUT_S,
                    order_id,
                    None,
                )
            )
            self.out.append(
                OrderRec(
                    self.ids.next_uuid(),
                    ts,
                    corr,
                    "order.paid",
                    order_id,
                    buyer,
                    seller_acc,
                    amount,
                    None,
                    None,
                    payer,
                    pid,
                )
            )
            self.stats.count_event("payment.requested")
            self.stats.count_event("order.paid")
            c.balance[i] -= amount
            self.stats.orders_prepaid += 1
            self.stats.digital("ecommerce", c.district[i], amount)
            self.stats.ticket("ecommerce", amount)
            later = day.index + 1 + rng.randrange(3)
            self.schedule(later, (self._day_start(later), DISPATCH, i, (pid, corr, cancel, amount)))
        else:
            self.stats.orders_cod += 1
            self.stats.ticket("ecommerce", amount)
            later = day.index + 2 + rng.randrange(4)
            self.schedule(later, (self._day_start(later), DELIVERY, i, (order_id, corr, cancel, amount, seller_acc)))

    def _dispatch(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, (pid, corr, cancel, amount) = intent
        payer = self.reg.citizen_account(i)
        if cancel:
            self.out.append(VoidRequestedRec(self.ids.next_uuid(), ts, corr, pid, payer))
            self.stats.count_event("payment.void_requested")
            self.citizens.balance[i] += amount
        else:
            self.out.append(PostRequestedRec(self.ids.next_uuid(), ts, corr, pid, payer))
            self.stats.count_event("payment.post_requested")

    def _delivery(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, (order_id, corr, cancel, amount, seller_acc) = intent
        if cancel:
            return  # refused at the door: the order simply ends, no money moves
        self.out.append(
            OrderRec(
                self.ids.next_uuid(),
                ts,
                corr,
                "order.paid_on_delivery",
                order_id,
                self.reg.citizen_holder(i),
                seller_acc,
                amount,
                None,
                None,
                None,
                None,
            )
        )
        self.stats.count_event("order.paid_on_delivery")
        self.stats.cash(self.citizens.district[i], amount)

    def _receive(self, i: int, amount: int, day: SimDay) -> None:
        """Credits a wage or G2P and maybe plans a cash-out within two days."""
        c = self.citizens
        c.balance[i] += amount
        if self._rng_random() < self._cash_out[c.stage[i]]:
            # The next day or the one after: today's plan is already sorted and running.
            later = day.index + 1 + self.rng.randrange(2)
            self.schedule(later, (self._day_start(later), CASH_OUT, i, None))

    def _wage(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c = self.citizens
        if c.stage[i] == CASH_ONLY:
            return  # paid in cash: no event
        amount = self.amount("wage")
        eid = self.ids.next_uuid()
        employer = self.reg.employer_account(c.employer[i])
        self.out.append(
            PaymentRequestedRec(
                eid, ts, eid, "wage", "bank", employer, self.reg.citizen_account(i), amount, False, 0, None, None
            )
        )
        self.stats.count_event("payment.requested")
        self._receive(i, amount, day)

    def _g2p(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c = self.citizens
        if c.stage[i] == CASH_ONLY:
            if not c.flags[i] & G2P_RECIPIENT or self._rng_random() >= self.levers.g2p_into_wallets:
                return  # paid in cash at a disbursement point: no event
            open_account(self.cal, c, i, self.rng, stage=1)
            self.out.append(self.reg.citizen_opened(i, ts, self.ids.next_uuid()))
            self.stats.count_event("account.opened")
        amount = self.amount("g2p")
        eid = self.ids.next_uuid()
        self.out.append(
            PaymentRequestedRec(
                eid,
                ts,
                eid,
                "g2p",
                self._rail(i, "bank"),
                self.reg.government_account(0),
                self.reg.citizen_account(i),
                amount,
                False,
                0,
                None,
                None,
            )
        )
        self.stats.count_event("payment.requested")
        self._receive(i, amount, day)

    def _cash_out_now(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        balance = self.citizens.balance[i]
        amount = int(balance * (0.5 + 0.5 * self._rng_random())) // 10_000 * 10_000
        if amount >= 50_000:
            self._cash(False, i, amount, ts)

    def _day_start(self, day_index: int) -> int:
        """A random time on a later day, for a scheduled follow-up."""
        return self._start_ts + day_index * DAY_S + self.calendar.second_of_day(self.rng)


def _by_stage(values: dict[str, float]) -> list[float]:
    return [0.0 if k == 0 else values[STAGE_KEY[k]] for k in range(3)]
