"""A tenant's own Kafka requests may debit only the tenant's accounts (issue 14): pure rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from consumers.ledger.domain import Ledger
from consumers.ledger.outcomes import outcome_bytes
from consumers.ledger.reading import fingerprint, read_requests
from consumers.ledger.records import Account, Decision, Request, account_flags
from consumers.ledger.wire import from_model
from schemas.payments import PaymentRejected, PaymentRequested
from schemas.topics import TENANT_HEADER

AT = datetime(2026, 3, 1, tzinfo=UTC)
A, B = "ten_" + "a" * 16, "ten_" + "b" * 16
A_WALLET, B_WALLET, ECONOMY_WALLET = "acc_" + "a" * 32, "acc_" + "b" * 32, "acc_00000001"


def _pay(payer: str, payee: str, *, amount: int = 500, event_id: UUID | None = None, at: datetime = AT):
    return PaymentRequested(
        event_id=event_id or uuid4(),
        occurred_at=at,
        producer="sim",
        correlation_id=uuid4(),
        payer_account_id=payer,
        payee_account_id=payee,
        amount=amount,
        kind="p2p",
        rail="wallet",
    )


def _request(event: PaymentRequested, tenant: str | None, offset: int = 0) -> Request:
    return Request(from_model(event), 0, offset, fingerprint(from_model(event)), tenant)


def _ledger(**extra) -> Ledger:
    accounts = {
        i: Account(i, account_flags("citizen_wallet"), credits_posted=10_000)
        for i in (A_WALLET, B_WALLET, ECONOMY_WALLET)
    }
    return Ledger(
        accounts=accounts,
        pending={},
        prior={},
        clocks={},
        now=AT,
        owners={A_WALLET: A, B_WALLET: B},
        **extra,
    )


def test_a_tenant_pays_from_its_own_account() -> None:
    ledger = _ledger()
    assert ledger.decide(_request(_pay(A_WALLET, B_WALLET), A)).result == "created"
    assert len(ledger.effects.transfers) == 1


def test_another_tenants_account_or_the_economys_is_refused_and_nothing_moves() -> None:
    ledger = _ledger()
    for payer in (B_WALLET, ECONOMY_WALLET, "acc_" + "c" * 32):
        decision = ledger.decide(_request(_pay(payer, A_WALLET), A))
        assert decision.result == "payer_not_owned", payer
        assert not decision.duplicate
    assert ledger.effects.transfers == []
    assert [r.result for r in ledger.effects.requests] == ["payer_not_owned"] * 3


def test_requests_without_a_tenant_are_the_trusted_path_and_unchecked() -> None:
    ledger = _ledger()
    assert ledger.decide(_request(_pay(B_WALLET, A_WALLET), None)).result == "created"


def test_a_reused_event_id_of_another_tenant_reveals_nothing_and_is_not_recorded_twice() -> None:
    ledger = _ledger()
    event = _pay(B_WALLET, A_WALLET)
    assert ledger.decide(_request(event, B)).result == "created"
    stolen = _pay(B_WALLET, A_WALLET, event_id=event.event_id)
    decision = ledger.decide(_request(stolen, A, offset=1))
    assert (decision.result, decision.duplicate) == ("payer_not_owned", True)
    assert len(ledger.effects.requests) == 1  # one tracking row per request id, still


def test_a_tenant_cannot_move_the_economys_clock() -> None:
    """Same partition, same producer name "sim": the tenant's clock is its own."""
    ledger = _ledger()
    ledger.decide(_request(_pay(ECONOMY_WALLET, B_WALLET, at=AT), None))
    ledger.decide(_request(_pay(A_WALLET, B_WALLET, at=AT + timedelta(days=20)), A))
    assert ledger.clocks[(0, "sim")] == AT
    assert ledger.clocks[(0, f"{A}/sim")] == AT + timedelta(days=20)


def test_the_refusal_is_a_version_4_rejection_that_parses() -> None:
    ledger = _ledger()
    decision = ledger.decide(_request(_pay(B_WALLET, A_WALLET), A))
    assert isinstance(decision, Decision)
    key, value = outcome_bytes(decision)
    parsed = PaymentRejected.model_validate_json(value)
    assert (key, parsed.result, parsed.schema_version) == (B_WALLET, "payer_not_owned", 4)
    other = ledger.decide(_request(_pay(A_WALLET, B_WALLET, amount=10**9), A))
    assert json.loads(outcome_bytes(other)[1])["schema_version"] == 3  # older codes stay readable by v3 readers


class _Record:
    """The fields of aiokafka's ConsumerRecord that read_requests uses."""

    def __init__(self, value: bytes, offset: int, headers: tuple[tuple[str, bytes], ...]) -> None:
        self.value, self.offset, self.headers, self.key = value, offset, headers, None


def test_the_tenant_comes_from_the_gateways_header_only() -> None:
    event = _pay(A_WALLET, B_WALLET)
    body = event.model_dump_json().encode()
    records = [
        _Record(body, 0, ((TENANT_HEADER, A.encode()),)),
        _Record(_pay(A_WALLET, B_WALLET).model_dump_json().encode(), 1, (("other", b"x"),)),
    ]
    items, _ = read_requests(0, records, AT - timedelta(days=1))  # type: ignore[arg-type]
    tenants = [item.payload.tenant for item in items]  # type: ignore[union-attr]
    assert tenants == [A, None]


def test_an_expiry_is_copied_to_the_tenant_whose_clock_expired_it() -> None:
    from consumers.ledger.clock import clock_tenant

    assert clock_tenant(f"{A}/sim") == A
    assert clock_tenant("sim") is None
    assert clock_tenant("team/sim") is None  # only a tenant id before the slash names a tenant
