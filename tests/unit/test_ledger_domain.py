"""The ledger's pure rules against a deliberately simple in-memory model (hypothesis state machine)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consumers.ledger.domain import (
    ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS,
    TRANSFER_EXPIRE_PENDING,
    Account,
    Ledger,
    Pending,
    Request,
    RequestRecord,
    account_flags,
    expiry_transfer_id,
)
from schemas.cash import CashIn
from schemas.payments import PaymentPostRequested, PaymentRequested, PaymentVoidRequested

START = datetime(2026, 1, 1, tzinfo=UTC)
CITIZENS = ("acc_00000001", "acc_00000002", "acc_00000003")
EMPLOYER = "acc_0000000e"
AGENT = "acc_0000000a"
UNKNOWN = "acc_0000dead"
KNOWN = (*CITIZENS, EMPLOYER, AGENT)


_ids = itertools.count(1)


def envelope(at: datetime, event_id: UUID | None = None) -> dict:
    """Ids from a counter: hypothesis replays must draw the same pending ids in the same order."""
    return {
        "event_id": event_id or UUID(int=next(_ids)),
        "occurred_at": at,
        "producer": "test",
        "correlation_id": UUID(int=0),
    }


def fingerprint(event: object) -> bytes:
    return type(event).__name__.encode() + repr(getattr(event, "payee_account_id", "")).encode()


class LedgerMachine(RuleBasedStateMachine):
    """Drives `Ledger` and a ten-line model with the same requests; they must always agree."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = {i: Account(i, account_flags("citizen_wallet" if i in CITIZENS else "employer")) for i in KNOWN}
        self.pending: dict[UUID, Pending] = {}
        self.prior: dict[UUID, RequestRecord] = {}
        self.clocks: dict[int, datetime] = {}
        self.ledger = self._new_ledger()
        self.sent: list[tuple[Request, str]] = []
        # The model: posted balance per account, reserved amount per account, pending transfers.
        self.posted = dict.fromkeys(KNOWN, 0)
        self.reserved = dict.fromkeys(KNOWN, 0)
        self.model_pending: dict[UUID, dict] = {}
        self.now = {0: START, 1: START}
        self.transfer_ids: set[UUID] = set()

    def _new_ledger(self) -> Ledger:
        return Ledger(accounts=self.accounts, pending=self.pending, prior=self.prior, clocks=self.clocks)

    def _model_expire(self, partition: int) -> None:
        for item in self.model_pending.values():
            due = item["expires_at"] is not None and item["expires_at"] <= self.now[partition]
            if item["state"] == "pending" and item["partition"] == partition and due:
                item["state"] = "expired"
                self.reserved[item["debit"]] -= item["amount"]

    def _decide(self, event: object, partition: int) -> str:
        request = Request(event, partition, len(self.sent), fingerprint(event))  # type: ignore[arg-type]
        decision = self.ledger.decide(request)
        self.sent.append((request, decision.result))
        return decision.result

    # -- rules -------------------------------------------------------------------------------
    @rule(partition=st.integers(0, 1), seconds=st.integers(0, 90))
    def tick(self, partition: int, seconds: int) -> None:
        self.now[partition] += timedelta(seconds=seconds)

    @rule()
    def next_batch(self) -> None:
        """A new batch reloads the same state: decisions must not depend on batch boundaries."""
        self.ledger = self._new_ledger()

    @rule(
        payer=st.sampled_from((*KNOWN, UNKNOWN)),
        payee=st.sampled_from((*KNOWN, UNKNOWN)),
        amount=st.integers(1, 2_000),
        pending=st.booleans(),
        timeout=st.sampled_from((0, 1, 60)),
        partition=st.integers(0, 1),
    )
    def pay(self, payer: str, payee: str, amount: int, pending: bool, timeout: int, partition: int) -> None:
        at = self.now[partition]
        event = PaymentRequested(
            **envelope(at),
            kind="p2p",
            rail="raast",
            payer_account_id=payer,
            payee_account_id=payee,
            amount=amount,
            pending=pending,
            timeout_seconds=timeout if pending else 0,
        )
        self._model_expire(partition)
        result = self._decide(event, partition)
        if payer == payee:
            expected = "accounts_must_be_different"
        elif UNKNOWN in (payer, payee):
            expected = "account_not_found"
        elif payer in CITIZENS and self.posted[payer] - self.reserved[payer] < amount:
            expected = "exceeds_credits"
        else:
            expected = "created"
        assert result == expected, (result, expected)
        if expected != "created":
            return
        self.transfer_ids.add(event.event_id)
        if pending:
            self.reserved[payer] += amount
            self.model_pending[event.event_id] = {
                "debit": payer,
                "credit": payee,
                "amount": amount,
                "state": "pending",
                "partition": partition,
                "expires_at": at + timedelta(seconds=timeout) if timeout else None,
            }
        else:
            self.posted[payer] -= amount
            self.posted[payee] += amount

    @rule(citizen=st.sampled_from(CITIZENS), over=st.integers(0, 1), pending=st.booleans())
    def spend_to_the_limit(self, citizen: str, over: int, pending: bool) -> None:
        """Pays exactly what is available (or one paisa more): the boundary of exceeds_credits."""
        amount = self.posted[citizen] - self.reserved[citizen] + over
        if amount > 0:
            self.pay(citizen, EMPLOYER, amount, pending, 0, 0)

    @rule(citizen=st.sampled_from(CITIZENS), amount=st.integers(1, 3_000), partition=st.integers(0, 1))
    def cash_in(self, citizen: str, amount: int, partition: int) -> None:
        event = CashIn(
            **envelope(self.now[partition]), customer_account_id=citizen, agent_account_id=AGENT, amount=amount
        )
        self._model_expire(partition)
        assert self._decide(event, partition) == "created"
        self.posted[AGENT] -= amount
        self.posted[citizen] += amount

    @precondition(lambda self: self.model_pending)
    @rule(
        data=st.data(),
        partial=st.one_of(st.none(), st.integers(1, 2_500)),
        void=st.booleans(),
        partition=st.integers(0, 1),
    )
    def finish(self, data: st.DataObject, partial: int | None, void: bool, partition: int) -> None:
        pending_id = data.draw(st.sampled_from(sorted(self.model_pending)))
        item = self.model_pending[pending_id]
        at = self.now[partition]
        if void:
            event: object = PaymentVoidRequested(**envelope(at), pending_id=pending_id, payer_account_id=item["debit"])
        else:
            event = PaymentPostRequested(
                **envelope(at), pending_id=pending_id, payer_account_id=item["debit"], amount=partial
            )
        self._model_expire(partition)
        if item["state"] == "pending" and item["expires_at"] and item["expires_at"] <= self.now[partition]:
            item["state"] = "expired"  # due by the request's own simulated time
            self.reserved[item["debit"]] -= item["amount"]
        result = self._decide(event, partition)
        state = item["state"]
        if state == "pending":
            amount = item["amount"] if partial is None or void else partial
            if not void and amount > item["amount"]:
                assert result == "exceeds_pending_transfer_amount"
                return
            assert result == "created", result
            self.reserved[item["debit"]] -= item["amount"]
            item["state"] = "voided" if void else "posted"
            if not void:
                self.posted[item["debit"]] -= amount
                self.posted[item["credit"]] += amount
        elif state == "expired":
            assert result == "pending_transfer_expired"
        else:
            assert result == f"pending_transfer_already_{state}"

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """A duplicate delivery never moves money and repeats (or confirms) the first outcome."""
        request, first = data.draw(st.sampled_from(self.sent))
        before = {i: (a.debits_posted, a.credits_posted, a.debits_pending) for i, a in self.accounts.items()}
        transfers = len(self.ledger.effects.transfers)
        decision = self.ledger.decide(Request(request.event, request.partition, 0, request.fingerprint))
        expected = "exists" if first in ("created", "exists") else first
        assert decision.duplicate and decision.result == expected
        if decision.result == "exists" or first not in ("created",):
            after = {i: (a.debits_posted, a.credits_posted, a.debits_pending) for i, a in self.accounts.items()}
            # Only expiries (driven by the clock, not by the duplicate) may have moved anything.
            if len(self.ledger.effects.transfers) == transfers:
                assert after == before

    @precondition(lambda self: any(r.event.event_type == "payment.requested" for r, _ in self.sent))
    @rule(data=st.data())
    def reuse_id(self, data: st.DataObject) -> None:
        """The same id with a different amount is `exists_with_different_amount`, nothing moves."""
        request, _ = data.draw(st.sampled_from([s for s in self.sent if s[0].event.event_type == "payment.requested"]))
        changed = request.event.model_copy(update={"amount": request.event.amount + 1})
        decision = self.ledger.decide(Request(changed, request.partition, 0, request.fingerprint))
        assert decision.result == "exists_with_different_amount"

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def debits_equal_credits(self) -> None:
        accounts = self.accounts.values()
        assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
        assert sum(a.debits_pending for a in accounts) == sum(a.credits_pending for a in accounts)

    @invariant()
    def citizens_never_overdrawn(self) -> None:
        for account in self.accounts.values():
            if account.flags & ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert account.debits_pending + account.debits_posted <= account.credits_posted

    @invariant()
    def balances_match_model(self) -> None:
        for account_id in KNOWN:
            self._model_expire_all_known()
            account = self.accounts[account_id]
            assert account.credits_posted - account.debits_posted == self.posted[account_id]
            assert account.debits_pending == self.reserved[account_id]

    def _model_expire_all_known(self) -> None:
        """Pending transfers the ledger already expired (on their own partition's clock)."""
        for pending_id, item in self.model_pending.items():
            if item["state"] == "pending" and self.pending[pending_id].state == "expired":
                clock = self.clocks[item["partition"]]
                assert item["expires_at"] is not None and item["expires_at"] <= clock
                item["state"] = "expired"
                self.reserved[item["debit"]] -= item["amount"]


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerStateMachine = LedgerMachine.TestCase


def _request(event: object, partition: int = 0) -> Request:
    return Request(event, partition, 0, b"x")  # type: ignore[arg-type]


def test_expiry_is_a_transfer_with_a_derived_id() -> None:
    """A pending transfer expires on its partition's clock as a new transfer with a fixed id."""
    accounts = {i: Account(i) for i in (EMPLOYER, AGENT)}
    ledger = Ledger(accounts=accounts, pending={}, prior={}, clocks={})
    pay = PaymentRequested(
        **envelope(START),
        kind="ecommerce",
        rail="card",
        payer_account_id=EMPLOYER,
        payee_account_id=AGENT,
        amount=500,
        pending=True,
        timeout_seconds=60,
    )
    assert ledger.decide(_request(pay)).status == "pending"
    later = CashIn(
        **envelope(START + timedelta(seconds=59)), customer_account_id=AGENT, agent_account_id=EMPLOYER, amount=1
    )
    ledger.decide(_request(later, partition=1))  # another partition's clock does not expire it
    ledger.decide(_request(later.model_copy(update={"event_id": uuid4(), "occurred_at": START + timedelta(60)}), 1))
    assert accounts[EMPLOYER].debits_pending == 500
    ledger.advance(0, START + timedelta(seconds=60))
    expired = ledger.effects.transfers[-1]
    assert expired.flags == TRANSFER_EXPIRE_PENDING and expired.id == expiry_transfer_id(pay.event_id)
    assert accounts[EMPLOYER].debits_pending == 0 and accounts[EMPLOYER].debits_posted == 1 + 1


@pytest.mark.parametrize("kind, flagged", [("citizen_wallet", True), ("citizen_bank", True), ("merchant", False)])
def test_only_citizens_must_not_overdraw(kind: str, flagged: bool) -> None:
    """Citizen accounts carry debits_must_not_exceed_credits; businesses do not."""
    assert bool(account_flags(kind) & ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) is flagged
