"""The economy's shared state and the payment helpers every flow uses.

A day is planned as a list of intents `(second, kind, citizen, extra)`, `kind` being one of the
intent kinds below. Flows (`flows.py` for retail payments, `orders.py` for e-commerce, `income.py`
for wages, G2P and cash-outs) execute intents against the simulation's own view of balances and
append event records to `out`; the engine drains it as it goes.

This code runs once or more per event, so it binds hot methods once (`_next_uuid`, `_random`)
instead of looking them up through two attributes on every call, and draws with `random()` only:
`randrange`, `choice`, `gauss` and `normalvariate` are pure Python in CPython 3.11, so an index is
drawn as `int(random() * n)` and a normal by an inlined Box-Muller transform (see `amount`).
"""

from __future__ import annotations

import math
import random
from typing import Final

from producers.sim.calendar import DAY_S, Calendar
from producers.sim.calibration import MERCHANT_CATEGORIES, SHOP_CATEGORIES, Calibration
from producers.sim.identifiers import IdSource
from producers.sim.population import BANK, Citizens, Institutions, Merchants, Sampler
from producers.sim.records import AgentCashRec, CashPurchaseRec, PaymentRequestedRec, Record
from producers.sim.registry import Registry
from producers.sim.scenario import Scenario
from producers.sim.stats import RunStats

PURCHASE, BILL, P2P, RTP, ORDER, WAGE, G2P, CASH_OUT, DISPATCH, DELIVERY, RELEASE = range(11)
STAGE_KEY: Final = ("holder", "holder", "active")
TICKET_RUPEES_MIN: Final = 10
TICKET_RUPEES_MAX: Final = 5_000_000

# Ground-truth labels: what the simulation means a payment request to do in the ledger. A request
# without a label in `IntentLabels` is `normal` (expected to settle, or to pend and then be posted).
NORMAL: Final = "normal"
INTENDED_INSUFFICIENT_FUNDS: Final = "intended_insufficient_funds"  # paid anyway: exceeds_credits
INTENDED_UNKNOWN_PAYEE: Final = "intended_unknown_payee"  # an account nobody opened: account_not_found
INTENDED_VOID: Final = "intended_void"  # an authorisation the simulation will void (order cancelled)
PENDING_AT_END: Final = "pending_at_end"  # its capture, void or expiry would fall after the run's last day
INTENDED_TIMEOUT: Final = "intended_timeout"  # an authorisation nobody decides: the ledger expires it


class IntentLabels(dict[str, str]):
    """event_id → label of each request the simulation does not mean to settle normally.

    Kept only when a caller asks (`economy.labels = IntentLabels(days)`), so a default run pays
    nothing for it. `days` is the run's length: an authorisation whose decision is planned for a
    day the run never reaches stays pending in the ledger, and is labelled so.
    """

    def __init__(self, days: int) -> None:
        super().__init__()
        self.days = days


class EconomyBase:
    """One population's state during a run, and the helpers that turn a decision into records."""

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
        self._next_uuid = ids.next_uuid
        self._random = rng.random
        self._spare_normal: float | None = None  # the second of the last Box-Muller pair, unused yet
        self._start_ts = calendar.day(0).start_ts
        by_place, by_category = merchants.by_district_category, merchants.by_category
        self._shop_pools = [
            by_place.get((d, k)) or by_category.get(k)
            for d in range(len(cal.districts))
            for k in range(len(MERCHANT_CATEGORIES))
        ]
        b, r = cal.behaviour, cal.rates
        self._qr_use = [min(0.98, p * self.levers.incentives) for p in by_stage(b["qr_use_probability"])]
        self._bill_digital = [min(0.98, p * self.levers.incentives) for p in by_stage(b["bill_digital_probability"])]
        self._cash_out = by_stage(b["cash_out_after_receipt"])
        self._prepaid = by_stage(b["prepaid_share_of_orders"])
        self._cancel_share = b["order_cancel_share"]
        self._abandon_share = b["order_abandon_share"]
        self._orders = r["orders_per_citizen_day"]
        self._order_max = max(self._orders.values())
        self._order_counter = 0
        self._unknown_counter = 0
        self.labels: IntentLabels | None = None  # ground truth per request, only when asked
        # False (set by the engine's aggregate-only mode): skip the commonest records (cash purchases,
        # payment requests, agent cash), drawing the same random numbers as with them.
        self.emit_events = True

    def mark(self, event_id: str, label: str) -> None:
        """Notes a request's ground-truth label, if someone asked for labels (rare paths only)."""
        if self.labels is not None:
            self.labels[event_id] = label

    def schedule(self, day_index: int, intent: tuple) -> None:
        """Plans a follow-up (capture, delivery, cash-out) on a later day."""
        self.scheduled.setdefault(day_index, []).append(intent)

    def amount(self, flow: str) -> int:
        """A ticket in paisa, rounded to whole rupees (at least Rs 10)."""
        mu, sigma = self._tickets[flow]
        if sigma:
            # A lognormal ticket, exp(mu + sigma * z), z standard normal. z comes from the
            # Box-Muller transform inlined (what random.gauss computes, without its call): two
            # draws give a pair of independent normals, and the second serves the next ticket.
            z = self._spare_normal
            if z is None:
                radius = math.sqrt(-2.0 * math.log(1.0 - self._random()))
                angle = math.tau * self._random()
                z, self._spare_normal = radius * math.cos(angle), radius * math.sin(angle)
            else:
                self._spare_normal = None
            mu += sigma * z
        rupees = round(math.exp(mu))
        if rupees < TICKET_RUPEES_MIN:
            return TICKET_RUPEES_MIN * 100
        return (rupees if rupees < TICKET_RUPEES_MAX else TICKET_RUPEES_MAX) * 100

    def _afford(self, i: int, amount: int, ts: int) -> int:
        """Whether citizen i pays `amount` now: 1 yes, 0 no (falls back), -1 tries and will fail.

        Short of funds, a citizen usually cashes in first at an agent (emitted here), sometimes
        pays anyway (the ledger rejects it: exceeds_credits), otherwise gives up digitally.
        """
        balance = self.citizens.balance[i]
        if balance >= amount:
            return 1
        draw = self._random()
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
        agent = agents[int(self._random() * len(agents))]  # choice(agents), cheaper (module docstring)
        eid = self._next_uuid()
        if self.emit_events:  # an aggregate-only run builds no record, nor the account ids in it
            reg = self.reg
            self.out.append(
                AgentCashRec(eid, ts, eid, cash_in, reg.citizen_account(i), reg.agent_account(agent), amount)
            )
        c.balance[i] += amount if cash_in else -amount
        self.stats.count_event("cash.in" if cash_in else "cash.out")

    def _pay(self, kind: str, rail: str, i: int, payee: str, amount: int, ts: int, ref: str | None = None) -> str:
        eid = self._next_uuid()
        if self.emit_events:  # an aggregate-only run builds no record, nor the payer's account id
            self.out.append(
                PaymentRequestedRec(
                    eid, ts, eid, kind, rail, self.reg.citizen_account(i), payee, amount, False, 0, None, ref
                )
            )
        self.stats.count_event("payment.requested")
        return eid

    def _cash_purchase(self, i: int, merchant_account: str | None, category: str, amount: int, ts: int) -> None:
        if self.emit_events:  # the commonest event by far: an aggregate-only run skips its record
            eid = self._next_uuid()
            d = self.citizens.district[i]
            reg = self.reg
            self.out.append(
                CashPurchaseRec(
                    eid, ts, eid, reg.citizen_holder(i), merchant_account, category, reg.district_names[d], amount
                )
            )
        self.stats.cash("cash.purchase", i, amount)

    def _shop(self, district: int, category: int) -> int | None:
        """A merchant of the category in the district (anywhere if none there), None if none at all."""
        pool = self._shop_pools[district * len(MERCHANT_CATEGORIES) + category]
        return pool[int(self._random() * len(pool))] if pool else None  # choice(pool), cheaper

    def _rail(self, i: int, bank_rail: str) -> str:
        return bank_rail if self.citizens.account[i] == BANK else "wallet"

    def _day_start(self, day_index: int) -> int:
        """A random time on a later day, for a scheduled follow-up."""
        return self._start_ts + day_index * DAY_S + self.calendar.second_of_day(self.rng)


def by_stage(values: dict[str, float]) -> list[float]:
    """A per-stage list (cash only, holder, active) from the calibration's per-stage values."""
    return [0.0 if k == 0 else values[STAGE_KEY[k]] for k in range(3)]
