"""The ledger's pure rules against a deliberately simple in-memory model (hypothesis state machine)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consumers.ledger.clock import CLOCK_SKEW_MAX, ClockKey, reachable_clocks
from consumers.ledger.deadletter import Unreadable
from consumers.ledger.domain import Ledger
from consumers.ledger.reading import fingerprint, read_request
from consumers.ledger.records import (
    ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS,
    TRANSFER_EXPIRE_PENDING,
    Account,
    Decision,
    Expired,
    Pending,
    Request,
    RequestRecord,
    account_flags,
    expiry_transfer_id,
)
from consumers.ledger.wire import RequestEvent, from_model
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


class LedgerMachine(RuleBasedStateMachine):
    """Drives `Ledger` and a ten-line model with the same requests; they must always agree."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = {i: Account(i, account_flags("citizen_wallet" if i in CITIZENS else "employer")) for i in KNOWN}
        self.pending: dict[UUID, Pending] = {}
        self.prior: dict[UUID, RequestRecord] = {}
        self.clocks: dict[ClockKey, datetime] = {}
        self.ledger = self._new_ledger()
        self.sent: list[tuple[Request, str]] = []
        # The model: posted balance per account, reserved amount per account, pending transfers.
        self.posted = dict.fromkeys(KNOWN, 0)
        self.reserved = dict.fromkeys(KNOWN, 0)
        self.model_pending: dict[UUID, dict] = {}
        self.now = {0: START, 1: START}
        self.decided_at: dict[int, datetime] = {}  # the producer's clock per partition, as the ledger keeps it
        self.transfer_ids: set[UUID] = set()

    def _new_ledger(self) -> Ledger:
        return Ledger(accounts=self.accounts, pending=self.pending, prior=self.prior, clocks=self.clocks, now=START)

    def _model_expire(self, partition: int) -> None:
        for item in self.model_pending.values():
            due = item["expires_at"] is not None and item["expires_at"] <= self.now[partition]
            if item["state"] == "pending" and item["partition"] == partition and due:
                item["state"] = "expired"
                self.reserved[item["debit"]] -= item["amount"]

    def _decide(self, event: object, partition: int) -> str:
        request = Request(from_model(event), partition, len(self.sent), fingerprint(from_model(event)))  # type: ignore[arg-type]
        decision = self.ledger.decide(request)
        at = event.occurred_at  # type: ignore[attr-defined]
        self.decided_at[partition] = max(self.decided_at.get(partition, at), at)
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
        # Due by the later of the request's own time and the clock of the pending's partition.
        judged_at = max(at, self.decided_at.get(item["partition"], at))
        if item["state"] == "pending" and item["expires_at"] and item["expires_at"] <= judged_at:
            item["state"] = "expired"
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
        decision = self.ledger.decide(Request(request.event, request.partition, 0, fingerprint(request.event)))
        expected = "exists" if first in ("created", "exists") else first
        assert decision.duplicate and decision.result == expected
        # A duplicate neither moves money nor the clock, so nothing at all changes.
        after = {i: (a.debits_posted, a.credits_posted, a.debits_pending) for i, a in self.accounts.items()}
        assert after == before and len(self.ledger.effects.transfers) == transfers

    @precondition(lambda self: any(r.event.event_type == "payment.requested" for r, _ in self.sent))
    @rule(data=st.data())
    def reuse_id(self, data: st.DataObject) -> None:
        """The same id with a different amount is `exists_with_different_amount`, nothing moves."""
        request, _ = data.draw(st.sampled_from([s for s in self.sent if s[0].event.event_type == "payment.requested"]))
        changed = msgspec.structs.replace(request.event, amount=request.event.amount + 1)
        decision = self.ledger.decide(Request(changed, request.partition, 0, fingerprint(changed)))
        assert decision.result == "exists_with_different_amount"

    @precondition(lambda self: any(r.event.event_type == "payment.requested" for r, _ in self.sent))
    @rule(data=st.data())
    def reuse_id_other_field(self, data: st.DataObject) -> None:
        """The same id and amount with another field changed is `exists_with_different_fields`."""
        request, _ = data.draw(st.sampled_from([s for s in self.sent if s[0].event.event_type == "payment.requested"]))
        changed = msgspec.structs.replace(request.event, reference=f"inv-{len(self.sent)}")
        decision = self.ledger.decide(Request(changed, request.partition, 0, fingerprint(changed)))
        assert decision.result == "exists_with_different_fields" and decision.duplicate

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
                clock = self.clocks[(item["partition"], "test")]
                assert item["expires_at"] is not None and item["expires_at"] <= clock
                item["state"] = "expired"
                self.reserved[item["debit"]] -= item["amount"]


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedgerStateMachine = LedgerMachine.TestCase


def _request(event: object, partition: int = 0) -> Request:
    return Request(from_model(event), partition, 0, b"x")  # type: ignore[arg-type]


def test_expiry_is_a_transfer_with_a_derived_id() -> None:
    """A pending transfer expires on its own partition's clock as a new transfer with a fixed id."""
    accounts = {i: Account(i) for i in (EMPLOYER, AGENT)}
    ledger = Ledger(accounts=accounts, pending={}, prior={}, clocks={}, now=START)
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
    ledger.decide(
        _request(later.model_copy(update={"event_id": uuid4(), "occurred_at": START + timedelta(hours=2)}), 1)
    )
    assert accounts[EMPLOYER].debits_pending == 500
    ledger.advance((0, "test"), START + timedelta(seconds=60))
    expired = ledger.effects.transfers[-1]
    assert expired.flags == TRANSFER_EXPIRE_PENDING and expired.id == expiry_transfer_id(pay.event_id)
    assert accounts[EMPLOYER].debits_pending == 0 and accounts[EMPLOYER].debits_posted == 1 + 1


@pytest.mark.parametrize("kind, flagged", [("citizen_wallet", True), ("citizen_bank", True), ("merchant", False)])
def test_only_citizens_must_not_overdraw(kind: str, flagged: bool) -> None:
    """Citizen accounts carry debits_must_not_exceed_credits; businesses do not."""
    assert bool(account_flags(kind) & ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS) is flagged


def _authorisation(payer: str, payee: str, at: datetime, timeout_s: int, producer: str = "test") -> PaymentRequested:
    return PaymentRequested(
        **(envelope(at) | {"producer": producer}),
        kind="ecommerce",
        rail="card",
        payer_account_id=payer,
        payee_account_id=payee,
        amount=500,
        pending=True,
        timeout_seconds=timeout_s,
    )


def _cash_in(customer: str, at: datetime, producer: str = "test") -> CashIn:
    return CashIn(
        **(envelope(at) | {"producer": producer}), customer_account_id=customer, agent_account_id=AGENT, amount=1
    )


def _ledger() -> tuple[Ledger, dict[str, Account]]:
    accounts = {i: Account(i) for i in KNOWN}
    return Ledger(accounts=accounts, pending={}, prior={}, clocks={}, now=START), accounts


def test_a_wrong_century_is_refused_and_moves_no_clock() -> None:
    """A request dated 2099 is `invalid_timestamp`; another payer's authorisation still posts a minute later."""
    ledger, accounts = _ledger()
    hold = _authorisation(EMPLOYER, AGENT, START, 3_600)
    assert ledger.decide(_request(hold)).status == "pending"
    far = _cash_in(CITIZENS[0], datetime(2099, 1, 1, tzinfo=UTC))
    decision = ledger.decide(_request(far))
    assert decision.result == "invalid_timestamp" and not decision.settled
    assert ledger.clocks[(0, "test")] == START and accounts[CITIZENS[0]].credits_posted == 0
    post = PaymentPostRequested(
        **envelope(START + timedelta(seconds=60)), pending_id=hold.event_id, payer_account_id=EMPLOYER
    )
    assert ledger.decide(_request(post)).status == "posted"


def test_within_the_skew_the_clock_moves() -> None:
    """Exactly `CLOCK_SKEW_MAX` ahead is accepted (the bound is inclusive) and moves the clock."""
    ledger, _ = _ledger()
    ledger.decide(_request(_cash_in(CITIZENS[0], START)))
    assert ledger.decide(_request(_cash_in(CITIZENS[0], START + CLOCK_SKEW_MAX))).result == "created"
    assert ledger.clocks[(0, "test")] == START + CLOCK_SKEW_MAX


def test_another_producers_clock_never_expires_an_authorisation() -> None:
    """Producer B's later time on the same partition leaves producer A's authorisation pending."""
    ledger, accounts = _ledger()
    hold = _authorisation(EMPLOYER, AGENT, START, 60, producer="startup-a")
    ledger.decide(_request(hold))
    ledger.decide(_request(_cash_in(CITIZENS[1], START + timedelta(hours=2), producer="startup-b")))
    assert accounts[EMPLOYER].debits_pending == 500 and ledger.pending[hold.event_id].state == "pending"
    ledger.decide(_request(_cash_in(CITIZENS[1], START + timedelta(minutes=2), producer="startup-a")))
    assert ledger.pending[hold.event_id].state == "expired" and accounts[EMPLOYER].debits_pending == 0


def test_expiry_is_an_outcome_in_order() -> None:
    """An expiry joins the batch's outcomes where it happened: before the request whose clock caused it."""
    ledger, _ = _ledger()
    hold = _authorisation(EMPLOYER, AGENT, START, 60)
    ledger.decide(_request(hold))
    later = _cash_in(CITIZENS[0], START + timedelta(minutes=2))
    ledger.decide(_request(later))
    kinds = [type(o).__name__ for o in ledger.effects.outcomes]
    assert kinds == ["Decision", "Expired", "Decision"]
    expired = ledger.effects.outcomes[1]
    assert isinstance(expired, Expired) and expired.pending.id == hold.event_id
    assert expired.transfer_id == expiry_transfer_id(hold.event_id)
    last = ledger.effects.outcomes[2]
    assert isinstance(last, Decision) and last.request.event == from_model(later)


def test_a_post_after_its_own_expiry_time_finds_it_expired() -> None:
    """A post dated after `expires_at` is judged by its own time; the expiry itself is an outcome too."""
    ledger, _ = _ledger()
    hold = _authorisation(EMPLOYER, AGENT, START, 60)
    ledger.decide(_request(hold))
    post = PaymentPostRequested(
        **envelope(START + timedelta(minutes=5)), pending_id=hold.event_id, payer_account_id=EMPLOYER
    )
    assert ledger.decide(_request(post, partition=1)).result == "pending_transfer_expired"
    assert any(isinstance(o, Expired) for o in ledger.effects.outcomes)


def test_reachable_clocks_follow_the_decide_rule() -> None:
    """The batch's clock bound skips far-future requests exactly as `decide` does."""
    requests = [
        _request(_cash_in(CITIZENS[0], START)),
        _request(_cash_in(CITIZENS[0], datetime(2099, 1, 1, tzinfo=UTC))),
    ]
    requests.append(_request(_cash_in(CITIZENS[0], START + timedelta(hours=3))))
    assert reachable_clocks(requests, {}, START) == {(0, "test"): START + timedelta(hours=3)}


@pytest.mark.parametrize(
    "variant",
    [
        b'{"amount": 250, "event_type": "payment.requested", "kind": "p2p", "rail": "raast", '
        b'"payer_account_id": "acc_00000001", "payee_account_id": "acc_00000002", '
        b'"event_id": "00000000-0000-4000-8000-000000000001", "occurred_at": "2026-01-01T00:00:00+00:00", '
        b'"producer": "app", "correlation_id": "00000000-0000-4000-8000-000000000002"}',
        b'{"event_type":"payment.requested","schema_version":1,"event_id":"00000000-0000-4000-8000-000000000001",'
        b'"occurred_at":"2026-01-01T05:00:00+05:00","producer":"app","correlation_id":"00000000-0000-4000-8000-000000000002",'
        b'"kind":"p2p","rail":"raast","payer_account_id":"acc_00000001","payee_account_id":"acc_00000002",'
        b'"amount":250,"currency":"PKR","pending":false,"timeout_seconds":0,"order_id":null,"reference":null}',
    ],
)
def test_a_reserialised_retry_has_the_same_fingerprint(variant: bytes) -> None:
    """Key order, `+00:00`/`+05:00` for `Z` and spelled-out defaults do not change the fingerprint."""
    original = (
        b'{"event_type":"payment.requested","event_id":"00000000-0000-4000-8000-000000000001",'
        b'"occurred_at":"2026-01-01T00:00:00Z","producer":"app","correlation_id":"00000000-0000-4000-8000-000000000002",'
        b'"kind":"p2p","rail":"raast","payer_account_id":"acc_00000001","payee_account_id":"acc_00000002","amount":250}'
    )
    assert fingerprint(_read(variant)) == fingerprint(_read(original))
    changed = original.replace(b'"producer":"app"', b'"producer":"app2"')
    assert fingerprint(_read(changed)) != fingerprint(_read(original))


def _read(raw: bytes) -> RequestEvent:
    event = read_request(raw)
    assert not isinstance(event, Unreadable), event
    return event


def test_a_producer_back_after_months_on_wall_clock_time_is_accepted() -> None:
    """Months ahead of its own clock but not of the wall clock: a returning producer is not refused."""
    accounts = {i: Account(i) for i in KNOWN}
    today = START + timedelta(days=200)
    ledger = Ledger(accounts=accounts, pending={}, prior={}, clocks={}, now=today)
    ledger.decide(_request(_cash_in(CITIZENS[0], START)))
    assert ledger.decide(_request(_cash_in(CITIZENS[0], today - timedelta(hours=1)))).result == "created"
    far = _cash_in(CITIZENS[0], today + CLOCK_SKEW_MAX + timedelta(seconds=1))
    assert ledger.decide(_request(far)).result == "invalid_timestamp"
