"""The ledger's rules, pure: no I/O, no clock. A batch of requests in, decisions and effects out.

`Ledger` holds the balances and pending transfers loaded for one batch and decides each request
in order, exactly as TigerBeetle would: every expected outcome is a result code, never an
exception. What it accumulates (`effects`) is what the repository writes in one transaction:
new transfers, per-account balance deltas (one row per account, however many transfers touched
it — the hot-account technique), new and changed pending transfers, and request records.

Time is the simulated clock carried by events, kept per (source partition, producer): a pending
transfer expires when the clock of the producer that asked for it, on its partition, reaches
`expires_at`, before that producer's next event there is decided, so one producer's timestamps
can never expire another producer's authorisations. A request dated more than `CLOCK_SKEW_MAX`
ahead of both its producer's clock and the wall clock (`now`, passed in) is refused
(`invalid_timestamp`) and moves nothing, so a wrong century cannot expire its own producer's
either. The wall clock only widens what is accepted — a simulation far in the future moves on its
own clock — so for any stream dated before today the decisions never depend on it. Expiry is a
function of the stream alone, never of batching or wall time; each expiry is an outcome of its
own (`Expired`). The values it works with are in `records.py`.

A wallet opened with a tier has limits (`limits.py`): a new transfer is checked against the
payer's debit windows and the payee's credit windows and balance cap after both accounts are
found and before the payer's funds (`_check_transfer`), and counted in them once created. An
account without a tier (`Account.tier is None`) skips all of it.

A tenant's own Kafka request (`Request.tenant`, stamped by the tenant gateway from the topic it
came from) may debit only an account that tenant owns (`owners`, loaded for the batch); any other
is refused with `payer_not_owned` before any other rule. Its producer's clock is the tenant's own.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from uuid import UUID

from consumers.ledger.clock import ClockKey, clock_key, timely
from consumers.ledger.limits import check_balance_cap, check_window
from consumers.ledger.records import (
    CP,
    CPO,
    DP,
    DPO,
    SETTLED_RESULTS,
    TRANSFER_EXPIRE_PENDING,
    TRANSFER_PENDING,
    TRANSFER_POST_PENDING,
    TRANSFER_VOID_PENDING,
    Account,
    Decision,
    Effects,
    Expired,
    Pending,
    Request,
    RequestEvent,
    RequestRecord,
    Transfer,
    expiry_transfer_id,
)
from consumers.ledger.wire import (
    CashIn,
    CashOut,
    PaymentPostRequested,
    PaymentRequested,
    PaymentVoidRequested,
    RefundRequested,
)


class Ledger:
    """Decides a batch of requests against the balances and pending transfers loaded for it."""

    def __init__(
        self,
        *,
        accounts: dict[str, Account],
        pending: dict[UUID, Pending],
        prior: dict[UUID, RequestRecord],
        clocks: dict[ClockKey, datetime],
        now: datetime,
        owners: dict[str, str] | None = None,
    ) -> None:
        self.accounts = accounts
        self.owners = owners or {}  # account id -> owning tenant id, for the batch's tenant requests
        self.pending = pending
        self.prior = prior
        self.clocks = clocks
        self.now = now
        self.effects = Effects()
        self._due: dict[ClockKey, list[tuple[datetime, UUID]]] = {}
        for item in pending.values():
            self._watch(item)

    # -- the clock ---------------------------------------------------------------------------
    def _watch(self, item: Pending) -> None:
        if item.state == "pending" and item.expires_at is not None:
            key = (item.source_partition, item.source_producer)
            heapq.heappush(self._due.setdefault(key, []), (item.expires_at, item.id))

    def advance(self, key: ClockKey, occurred_at: datetime) -> None:
        """Moves one producer's clock on one partition forward; expires what is now due by it."""
        clock = max(self.clocks.get(key, occurred_at), occurred_at)
        self.clocks[key] = clock
        due = self._due.get(key)
        while due and due[0][0] <= clock:
            _, pending_id = heapq.heappop(due)
            item = self.pending[pending_id]
            if item.state == "pending":
                self._release(item, "expired", TRANSFER_EXPIRE_PENDING, expiry_transfer_id(item.id))

    # -- deciding ----------------------------------------------------------------------------
    def decide(self, request: Request) -> Decision:
        """Decides one request and records its effects. Requests must come in stream order."""
        event = request.event
        prior = self.prior.get(event.event_id)
        if request.tenant is not None and self.owners.get(_parties(event)[0]) != request.tenant:
            return self._not_owned(request, duplicate=prior is not None)
        if prior is not None:
            decision = self._replay(request, prior)
            self.effects.outcomes.append(decision)
            return decision
        key = clock_key(request)
        clock = self.clocks.get(key)
        if clock is not None and not timely(event.occurred_at, clock, self.now):
            debit, credit = _parties(event)
            decision = Decision(request, "invalid_timestamp", None, debit, credit, getattr(event, "amount", None) or 0)
            return self._record(request, decision)
        self.advance(key, event.occurred_at)
        # The ledger's own read forms (wire.py), dispatched on their exact type.
        if type(event) is PaymentRequested:
            decision = self._transfer(request, event.payer_account_id, event.payee_account_id, event.amount, event.kind)
        elif type(event) is CashIn:
            decision = self._transfer(
                request, event.agent_account_id, event.customer_account_id, event.amount, "cash_in"
            )
        elif type(event) is CashOut:
            decision = self._transfer(
                request, event.customer_account_id, event.agent_account_id, event.amount, "cash_out"
            )
        elif type(event) is RefundRequested:
            decision = self._transfer(request, event.payer_account_id, event.payee_account_id, event.amount, "refund")
        else:
            assert type(event) is PaymentPostRequested or type(event) is PaymentVoidRequested, event
            decision = self._finish_pending(request, event)
        return self._record(request, decision)

    def _not_owned(self, request: Request, *, duplicate: bool) -> Decision:
        """A tenant's request that debits an account the tenant does not own: refused before
        anything else is looked at, so it learns nothing about the account (not even its id's
        history) and moves no clock. A reused event id is answered without a second record."""
        event = request.event
        debit, credit = _parties(event)
        decision = Decision(
            request, "payer_not_owned", None, debit, credit, getattr(event, "amount", None) or 0, duplicate=duplicate
        )
        if duplicate:
            self.effects.outcomes.append(decision)
            return decision
        return self._record(request, decision)

    def _record(self, request: Request, decision: Decision) -> Decision:
        """Keeps a new request's decision: its tracking row and its outcome."""
        event = request.event
        # Positional, in RequestRecord's field order: keywords cost a microsecond per request.
        record = RequestRecord(
            event.event_id,
            event.event_type,
            decision.result,
            decision.status,
            getattr(event, "amount", None) or 0,
            request.fingerprint,
            request.partition,
            request.offset,
        )
        self.prior[event.event_id] = record
        self.effects.requests.append(record)
        self.effects.outcomes.append(decision)
        return decision

    def _replay(self, request: Request, prior: RequestRecord) -> Decision:
        """A request seen before: the same outcome again, or a clash if its fields changed."""
        event = request.event
        amount = getattr(event, "amount", None) or 0
        debit, credit = _parties(event)
        if prior.amount != amount:
            result = "exists_with_different_amount"
        elif prior.fingerprint != request.fingerprint:
            result = "exists_with_different_fields"
        elif prior.result in SETTLED_RESULTS:
            result = "exists"
        else:
            result = prior.result
        status = None
        if result == "exists":
            known = self.pending.get(event.event_id)
            status = known.state if known is not None else prior.transfer_status
        return Decision(request, result, status, debit, credit, amount, duplicate=True)

    def _transfer(self, request: Request, debit_id: str, credit_id: str, amount: int, code: str) -> Decision:
        event = request.event
        if debit_id == credit_id:
            return Decision(request, "accounts_must_be_different", None, debit_id, credit_id, amount)
        debit, credit = self.accounts.get(debit_id), self.accounts.get(credit_id)
        result = _check_transfer(debit, credit, amount, event.occurred_at)
        if result != "created":
            return Decision(request, result, None, debit_id, credit_id, amount)
        assert debit is not None and credit is not None
        if debit.tier is not None or credit.tier is not None:
            self._count_limits(debit, credit, amount, event.occurred_at)
        rail, timeout_seconds, reference, pending = None, 0, None, False
        if type(event) is PaymentRequested:
            rail, timeout_seconds, reference, pending = (
                event.rail,
                event.timeout_seconds,
                event.reference,
                event.pending,
            )
        elif type(event) is RefundRequested:
            reference = event.reference
        self.effects.transfers.append(
            Transfer(  # positional, in field order (see _record)
                event.event_id,  # id
                debit_id,
                credit_id,
                amount,
                event.currency,  # type: ignore[union-attr]  # every transfer request has one
                code,
                rail,
                None,  # pending_id
                timeout_seconds,
                TRANSFER_PENDING if pending else 0,  # flags
                event.occurred_at,
                reference,
            )
        )
        if pending:
            expires_at = event.occurred_at + timedelta(seconds=timeout_seconds) if timeout_seconds else None
            item = Pending(
                event.event_id,
                debit_id,
                credit_id,
                amount,
                code,
                expires_at,
                request.partition,
                source_producer=clock_key(request)[1],
                correlation_id=event.correlation_id,
                requested_at=event.occurred_at,
                rail=rail,
            )
            self.pending[item.id] = item
            self.effects.new_pending.append(item)
            self._watch(item)
            self._move(debit_id, DP, credit_id, CP, amount)
            return Decision(request, "created", "pending", debit_id, credit_id, amount)
        self._move(debit_id, DPO, credit_id, CPO, amount)
        return Decision(request, "created", "posted", debit_id, credit_id, amount)

    def _count_limits(self, debit: Account, credit: Account, amount: int, at: datetime) -> None:
        """Counts a created transfer toward its tiered accounts' windows (limits.py)."""
        on = at.date()
        if debit.tier is not None:
            debit.tier.debits.count(on, amount)
            self.effects.windows[debit.id] = debit
        if credit.tier is not None:
            credit.tier.credits.count(on, amount)
            self.effects.windows[credit.id] = credit

    def _finish_pending(self, request: Request, event: PaymentPostRequested | PaymentVoidRequested) -> Decision:
        """Posts (fully or in part) or voids a pending transfer."""
        item = self.pending.get(event.pending_id)
        asked = getattr(event, "amount", None) or 0
        if item is None or item.debit_account_id != event.payer_account_id:
            return Decision(request, "pending_transfer_not_found", None, event.payer_account_id, None, asked)
        # Judged by the later of the request's own time and the clock that expires the pending.
        judged_at = event.occurred_at
        owner_clock = self.clocks.get((item.source_partition, item.source_producer))
        if owner_clock is not None and owner_clock > judged_at:
            judged_at = owner_clock
        if item.state == "pending" and item.expires_at is not None and item.expires_at <= judged_at:
            self._release(item, "expired", TRANSFER_EXPIRE_PENDING, expiry_transfer_id(item.id))
        if item.state != "pending":
            code = f"pending_transfer_already_{item.state}"
            if item.state == "expired":
                code = "pending_transfer_expired"
            return Decision(request, code, None, item.debit_account_id, item.credit_account_id, asked)
        if isinstance(event, PaymentVoidRequested):
            self._release(item, "voided", TRANSFER_VOID_PENDING, event.event_id, at=event.occurred_at)
            return Decision(request, "created", "voided", item.debit_account_id, item.credit_account_id, 0)
        amount = event.amount if event.amount is not None else item.amount
        if amount > item.amount:
            return Decision(
                request, "exceeds_pending_transfer_amount", None, item.debit_account_id, item.credit_account_id, amount
            )
        self._release(item, "posted", TRANSFER_POST_PENDING, event.event_id, posted_amount=amount, at=event.occurred_at)
        return Decision(request, "created", "posted", item.debit_account_id, item.credit_account_id, amount)

    def _release(
        self,
        item: Pending,
        state: str,
        flags: int,
        transfer_id: UUID,
        *,
        posted_amount: int = 0,
        at: datetime | None = None,
    ) -> None:
        """Ends a pending transfer: its whole amount leaves pending, `posted_amount` is posted."""
        occurred_at = at if at is not None else item.expires_at
        assert occurred_at is not None, item
        item.state = state
        self.effects.pending_states[item.id] = state
        if state == "expired":
            self.effects.outcomes.append(Expired(item, transfer_id))
        self._move(item.debit_account_id, DP, item.credit_account_id, CP, -item.amount)
        if posted_amount:
            self._move(item.debit_account_id, DPO, item.credit_account_id, CPO, posted_amount)
        self.effects.transfers.append(
            Transfer(
                id=transfer_id,
                debit_account_id=item.debit_account_id,
                credit_account_id=item.credit_account_id,
                amount=posted_amount if flags == TRANSFER_POST_PENDING else item.amount,
                currency="PKR",
                code=item.code,
                rail=None,
                pending_id=item.id,
                timeout_seconds=0,
                flags=flags,
                occurred_at=occurred_at,
                reference=None,
            )
        )

    def _move(self, debit_id: str, debit_index: int, credit_id: str, credit_index: int, amount: int) -> None:
        """Applies one double-entry movement to the loaded balances and the batch's deltas."""
        debit, credit = self.accounts[debit_id], self.accounts[credit_id]
        if debit_index == DP:
            debit.debits_pending += amount
            credit.credits_pending += amount
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        deltas = self.effects.deltas
        debit_deltas = deltas.get(debit_id)
        if debit_deltas is None:
            debit_deltas = deltas[debit_id] = [0, 0, 0, 0]
        debit_deltas[debit_index] += amount
        credit_deltas = deltas.get(credit_id)
        if credit_deltas is None:
            credit_deltas = deltas[credit_id] = [0, 0, 0, 0]
        credit_deltas[credit_index] += amount


def _check_transfer(debit: Account | None, credit: Account | None, amount: int, at: datetime) -> str:
    """Whether a transfer between two different accounts may be created, checked in the order
    docs/ledger.md states: both accounts exist, the payer's debit limits, the payee's credit
    limits and balance cap, then the payer's funds."""
    if debit is None or credit is None:
        return "account_not_found"
    if debit.tier is not None and not check_window(debit.tier.limits, debit.tier.debits, at, amount):
        return "payer_limit_exceeded"
    tier = credit.tier
    if tier is not None and not (
        check_window(tier.limits, tier.credits, at, amount)
        and check_balance_cap(tier.limits, credit.balance_with_incoming, amount)
    ):
        return "payee_limit_exceeded"
    if not debit.check_debit_allowed(amount):
        return "exceeds_credits"
    return "created"


def _parties(event: RequestEvent) -> tuple[str, str | None]:
    """(debit, credit) account ids as the request names them. Dispatched on the exact type, as in
    `Ledger.decide` (this runs for every request a batch gathers accounts for)."""
    if type(event) is PaymentRequested or type(event) is RefundRequested:
        return event.payer_account_id, event.payee_account_id
    if type(event) is CashIn:
        return event.agent_account_id, event.customer_account_id
    if type(event) is CashOut:
        return event.customer_account_id, event.agent_account_id
    assert type(event) is PaymentPostRequested or type(event) is PaymentVoidRequested, event
    return event.payer_account_id, None


def accounts_named(event: RequestEvent) -> tuple[str, ...]:
    """Every account a request may touch directly (post/void touch the pending's accounts)."""
    debit, credit = _parties(event)
    return (debit,) if credit is None else (debit, credit)
