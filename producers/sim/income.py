"""Money coming in: monthly wages from employers, quarterly G2P instalments from government, and
the cash-outs at agents that often follow a receipt."""

from __future__ import annotations

from typing import Final

from producers.sim.calendar import SimDay
from producers.sim.economy import CASH_OUT, EconomyBase
from producers.sim.population import CASH_ONLY, ELIGIBLE, G2P_RECIPIENT, open_account
from producers.sim.records import PaymentRequestedRec

G2P_MONTHS: Final = (1, 4, 7, 10)  # quarterly instalments (assumption)
G2P_FIRST_DAY: Final = 10
G2P_SPREAD_DAYS: Final = 5
CASH_OUT_MIN_PAISA: Final = 50_000
_G2P_WALLET: Final = G2P_RECIPIENT | ELIGIBLE  # a recipient who can hold a wallet


class IncomeFlows(EconomyBase):
    """The wage, G2P and cash-out flows."""

    def _receive(self, i: int, amount: int, day: SimDay) -> None:
        """Credits a wage or G2P and maybe plans a cash-out within two days."""
        c = self.citizens
        c.balance[i] += amount
        if self._random() < self._cash_out[c.stage[i]]:
            # The next day or the one after: today's plan is already sorted and running.
            later = day.index + 1 + self.rng.randrange(2)
            self.schedule(later, (self._day_start(later), CASH_OUT, i, None))

    def _wage(self, intent: tuple, day: SimDay) -> None:
        ts, _, i, _ = intent
        c = self.citizens
        if c.stage[i] == CASH_ONLY:
            return  # paid in cash: no event
        amount = self.amount("wage")
        eid = self._next_uuid()
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
            # A wallet needs a CNIC and a phone of the recipient's own (ELIGIBLE), as any account.
            if c.flags[i] & _G2P_WALLET != _G2P_WALLET or self._random() >= self.levers.g2p_into_wallets:
                return  # paid in cash at a disbursement point: no event
            open_account(self.cal, c, i, self.rng, stage=1)
            self.out.append(self.reg.citizen_opened(i, ts, self._next_uuid()))
            self.stats.count_event("account.opened")
        amount = self.amount("g2p")
        eid = self._next_uuid()
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
        amount = int(balance * (0.5 + 0.5 * self._random())) // 10_000 * 10_000
        if amount >= CASH_OUT_MIN_PAISA:
            self._cash(False, i, amount, ts)
