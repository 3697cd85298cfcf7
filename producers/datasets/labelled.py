"""A simulation run as labelled rows: its accounts, and its payment requests with ground truth.

`LabelledRun` switches the economy's label hook on (`IntentLabels`), runs the simulation once and
turns each batch of records into `AccountRow`s and `RequestRow`s. It also keeps the simulation's
own view of citizen balances, replayed from the requests and their labels (every citizen starts
at zero and only requests move the view), so each row can say what the payer's and payee's
balances were before and after it. Businesses, agents and institutions have no such view: their
balance columns are None.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple

from producers.sim.calendar import DAY_S
from producers.sim.economy import INTENDED_TIMEOUT, INTENDED_VOID, NORMAL, PENDING_AT_END, IntentLabels
from producers.sim.engine import Simulation
from producers.sim.orders import RELEASE_AFTER_DAYS
from producers.sim.records import AccountOpenedRec, AgentCashRec, PaymentRequestedRec, PendingDecisionRec

CITIZEN_KINDS: Final = frozenset({"citizen_bank", "citizen_wallet"})
PENDING_MAX: Final = 10_000_000  # authorisations awaiting a decision; far above any run's count
MOVING_LABELS: Final = frozenset({NORMAL, INTENDED_VOID, PENDING_AT_END, INTENDED_TIMEOUT})  # the ledger accepts these
RELEASE_AFTER_S: Final = RELEASE_AFTER_DAYS * DAY_S  # an abandoned authorisation's money back in the view
_UNKNOWN_BALANCES: Final = (None, None, None, None)

Progress = Callable[[int], None]  # days completed


class AccountRow(NamedTuple):
    """One account.opened, without its personal numbers (no IBAN, no Raast alias)."""

    account_id: str
    kind: str
    holder_token: str
    provider: str
    district: str
    gender: str | None
    age_band: str | None
    area: str | None
    merchant_category: str | None
    accepted_instruments: tuple[str, ...]
    opened_ts: int  # epoch seconds


class RequestRow(NamedTuple):
    """One request on the payment-requests topic, its label and the balances it moves.

    `from_account_id` is where the money leaves, `to_account_id` where it arrives (for cash.in
    the agent pays the customer's account; for a post or void, the authorisation's parties).
    Balances are the simulation's own view, in paisa, None for accounts it has no view of.
    """

    seq: int  # position among the run's requests, from 0
    event_id: str
    correlation_id: str
    ts: int  # epoch seconds
    event_type: str
    kind: str | None
    rail: str | None
    from_account_id: str
    to_account_id: str
    amount_paisa: int
    pending: bool
    timeout_seconds: int | None
    order_id: str | None
    pending_id: str | None
    label: str
    from_balance_before: int | None
    from_balance_after: int | None
    to_balance_before: int | None
    to_balance_after: int | None


class LabelledRun:
    """Runs one simulation with labels on; `batches()` yields (accounts, requests) row lists."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.labels = IntentLabels(sim.config.days)
        sim.economy.labels = self.labels
        self.balances: dict[str, int] = {}  # citizen account id → paisa (the simulation's view)
        self.label_counts: Counter[str] = Counter()
        self._pending: dict[str, tuple[str, str, int, str]] = {}  # id → from, to, amount, label
        # intended_timeout authorisations, no decision to come: (when the simulation's view gets the money
        # back, order of arrival, payer, amount). An abandoned one labelled pending_at_end waits in _pending.
        self._releases: list[tuple[int, int, str, int]] = []
        self.released = 0  # abandoned authorisations whose money came back in the view
        self._seq = 0

    def batches(self, progress: Progress | None = None) -> Iterator[tuple[list[AccountRow], list[RequestRow]]]:
        """The run's rows, one pair of lists per simulation batch. Call once."""
        days = self.sim.stats.days
        for batch in self.sim.batches():
            accounts: list[AccountRow] = []
            requests: list[RequestRow] = []
            for rec in batch:
                self._release_before(rec.ts)
                if type(rec) is AccountOpenedRec:
                    accounts.append(self._account(rec))
                elif type(rec) is PaymentRequestedRec:
                    requests.append(self._payment(rec))
                elif type(rec) is AgentCashRec:
                    requests.append(self._cash(rec))
                elif type(rec) is PendingDecisionRec:
                    requests.append(self._decision(rec))
            if progress is not None:
                progress(len(days))
            yield accounts, requests
        self._release_before(self.sim.calendar.day(0).start_ts + self.sim.config.days * DAY_S - 1)  # the last days
        if progress is not None:
            progress(len(days))  # the last day closes after its last batch

    # -- one record each ---------------------------------------------------------------------------

    def _account(self, rec: AccountOpenedRec) -> AccountRow:
        if rec.kind in CITIZEN_KINDS:
            self.balances.setdefault(rec.account_id, 0)
        return AccountRow(
            rec.account_id,
            rec.kind,
            rec.holder_token,
            rec.provider,
            rec.district,
            rec.gender,
            rec.age_band,
            rec.area,
            rec.merchant_category,
            rec.accepted_instruments,
            rec.ts,
        )

    def _payment(self, rec: PaymentRequestedRec) -> RequestRow:
        label = self.labels.pop(rec.event_id, NORMAL)
        # Refused requests move nothing; an authorisation holds the payer's money at once.
        moves = label in MOVING_LABELS
        if rec.pending:
            if len(self._pending) + len(self._releases) >= PENDING_MAX:
                raise RuntimeError(f"more than {PENDING_MAX:,} authorisations await a decision")
            if label == INTENDED_TIMEOUT:  # no decision follows: the ledger expires it
                heapq.heappush(self._releases, (rec.ts + RELEASE_AFTER_S, self._seq, rec.payer_account_id, rec.amount))
            else:
                self._pending[rec.event_id] = (rec.payer_account_id, rec.payee_account_id, rec.amount, label)
        row = RequestRow(
            self._next_seq(),
            rec.event_id,
            rec.correlation_id,
            rec.ts,
            "payment.requested",
            rec.kind,
            rec.rail,
            rec.payer_account_id,
            rec.payee_account_id,
            rec.amount,
            rec.pending,
            rec.timeout_seconds if rec.pending else None,
            rec.order_id,
            None,
            label,
            *_UNKNOWN_BALANCES,
        )
        return self._move(row, -rec.amount if moves else 0, rec.amount if moves and not rec.pending else 0)

    def _cash(self, rec: AgentCashRec) -> RequestRow:
        customer, agent = rec.customer_account_id, rec.agent_account_id
        source, target = (agent, customer) if rec.cash_in else (customer, agent)
        row = RequestRow(
            self._next_seq(),
            rec.event_id,
            rec.correlation_id,
            rec.ts,
            "cash.in" if rec.cash_in else "cash.out",
            None,
            None,
            source,
            target,
            rec.amount,
            False,
            None,
            None,
            None,
            NORMAL,
            *_UNKNOWN_BALANCES,
        )
        return self._move(row, -rec.amount, rec.amount)

    def _decision(self, rec: PendingDecisionRec) -> RequestRow:
        source, target, amount, label = self._pending.pop(rec.pending_id)
        row = RequestRow(
            self._next_seq(),
            rec.event_id,
            rec.correlation_id,
            rec.ts,
            rec.event_type,
            None,
            None,
            source,
            target,
            amount,
            False,
            None,
            None,
            rec.pending_id,
            label,
            *_UNKNOWN_BALANCES,
        )
        # A post moves nothing more in the simulation's view (the payee is a business, which has no
        # view); a void gives the payer the held money back.
        return self._move(row, 0 if rec.post else amount, 0)

    def _release_before(self, ts: int) -> None:
        """Gives the payers of abandoned authorisations their money back in the view, as the
        simulation does (`OrderFlows._release`), up to and including `ts`."""
        releases, balances = self._releases, self.balances
        while releases and releases[0][0] <= ts:
            _, _, payer, amount = heapq.heappop(releases)
            balances[payer] += amount
            self.released += 1

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _move(self, row: RequestRow, from_delta: int, to_delta: int) -> RequestRow:
        """Applies a request to the balance view; returns the row with its balances filled in."""
        self.label_counts[row.label] += 1
        balances = self.balances
        from_before = balances.get(row.from_account_id)
        from_after = None if from_before is None else from_before + from_delta
        if from_after is not None:
            balances[row.from_account_id] = from_after
        to_before = balances.get(row.to_account_id)
        to_after = None if to_before is None else to_before + to_delta
        if to_after is not None:
            balances[row.to_account_id] = to_after
        return row._replace(
            from_balance_before=from_before,
            from_balance_after=from_after,
            to_balance_before=to_before,
            to_balance_after=to_after,
        )
