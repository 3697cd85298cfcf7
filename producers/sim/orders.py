"""E-commerce: an order is placed, paid up front (a pending payment, later posted or voided at
dispatch, or left to expire when the seller abandons it) or on delivery (cash at the door, or refused)."""

from __future__ import annotations

from typing import Final

from producers.sim.calendar import DAY_S, SimDay
from producers.sim.calibration import MERCHANT_CATEGORIES
from producers.sim.economy import (
    DELIVERY,
    DISPATCH,
    INTENDED_TIMEOUT,
    INTENDED_VOID,
    PENDING_AT_END,
    RELEASE,
    EconomyBase,
)
from producers.sim.population import URBAN
from producers.sim.records import OrderRec, PaymentRequestedRec, PendingDecisionRec

ECOMMERCE: Final = MERCHANT_CATEGORIES.index("ecommerce")
ORDER_TIMEOUT_DAYS: Final = 7
ORDER_TIMEOUT_S: Final = ORDER_TIMEOUT_DAYS * DAY_S
# An abandoned order's authorisation expires in the ledger once the simulation's clock passes its
# timeout; the simulation's own balance view gives the held money back a day after that, so the view
# never counts on money the ledger may still hold.
RELEASE_AFTER_DAYS: Final = ORDER_TIMEOUT_DAYS + 1


class OrderFlows(EconomyBase):
    """The order, dispatch and delivery flows."""

    def _order(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c, rng = self.citizens, self.rng
        area = "urban" if c.area[i] == URBAN else "rural"
        if self._random() * self._order_max >= self._orders[area]:
            return
        seller = self._shop(c.district[i], ECOMMERCE)
        if seller is None:
            return
        amount = self.amount("ecommerce")
        self._order_counter += 1
        order_id = self.reg.order_id(self._order_counter)
        corr = self._next_uuid()
        buyer, seller_acc, district = (
            self.reg.citizen_holder(i),
            self.reg.merchant_account(seller),
            self.reg.district_names[c.district[i]],
        )
        prepaid = self._random() < self._prepaid[c.stage[i]]
        if prepaid and self._afford(i, amount, ts) <= 0:
            prepaid = False
        method = "prepaid" if prepaid else "cash_on_delivery"
        self.out.append(
            OrderRec(
                self._next_uuid(),
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
        # One draw decides the order's fate: cancelled, abandoned by the seller (prepaid orders only:
        # nobody posts or voids the authorisation, so it expires), or fulfilled.
        fate = self._random()
        cancel = fate < self._cancel_share
        abandon = prepaid and not cancel and fate < self._cancel_share + self._abandon_share
        if prepaid:
            payer = self.reg.citizen_account(i)
            pid = self._next_uuid()
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
                    self._next_uuid(),
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
            self.stats.digital("ecommerce", i, amount)
            self.stats.ticket("ecommerce", amount)
            later = day.index + 1 + rng.randrange(3)  # drawn for an abandoned order too: later draws stay put
            if abandon:
                self._abandon(i, pid, ts, amount, day)
                return
            self.schedule(later, (self._day_start(later), DISPATCH, i, (pid, corr, cancel, amount)))
            if self.labels is not None and (cancel or later >= self.labels.days):
                self.mark(pid, PENDING_AT_END if later >= self.labels.days else INTENDED_VOID)
        else:
            self.stats.orders_cod += 1
            self.stats.ticket("ecommerce", amount)
            later = day.index + 2 + rng.randrange(4)
            self.schedule(later, (self._day_start(later), DELIVERY, i, (order_id, corr, cancel, amount, seller_acc)))

    def _abandon(self, i: int, pid: str, ts: int, amount: int, day: SimDay) -> None:
        """The seller never ships nor cancels: no post or void follows, and the ledger expires the
        authorisation after ORDER_TIMEOUT_S. The balance view gets the money back a day later."""
        self.stats.orders_abandoned += 1
        self.schedule(day.index + RELEASE_AFTER_DAYS, (ts + RELEASE_AFTER_DAYS * DAY_S, RELEASE, i, amount))
        if self.labels is not None:  # expired inside the run: a whole day of its events follows the expiry
            expired_inside = day.index + RELEASE_AFTER_DAYS < self.labels.days
            self.mark(pid, INTENDED_TIMEOUT if expired_inside else PENDING_AT_END)

    def _release(self, intent: tuple, day: SimDay) -> None:
        """An abandoned authorisation has expired: the simulation's view of the payer's balance gets
        the held money back (the ledger emits payment.expired itself; nothing is sent)."""
        _, _, i, amount = intent
        self.citizens.balance[i] += amount

    def _dispatch(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, (pid, corr, cancel, amount) = intent
        payer = self.reg.citizen_account(i)
        if cancel:
            self.out.append(PendingDecisionRec(self._next_uuid(), ts, corr, False, pid, payer))
            self.stats.count_event("payment.void_requested")
            self.citizens.balance[i] += amount
        else:
            self.out.append(PendingDecisionRec(self._next_uuid(), ts, corr, True, pid, payer))
            self.stats.count_event("payment.post_requested")

    def _delivery(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, (order_id, corr, cancel, amount, seller_acc) = intent
        if cancel:
            return  # refused at the door: the order simply ends, no money moves
        self.out.append(
            OrderRec(
                self._next_uuid(),
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
        self.stats.cash("order.paid_on_delivery", i, amount)
