"""Outcome events written by the ledger's string template are valid contract events."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from consumers.ledger.domain import Decision, Request
from consumers.ledger.outbox import partition_for
from consumers.ledger.outcomes import outcome_bytes
from schemas.cash import CashIn
from schemas.events import parse_event
from schemas.payments import PaymentRejected, PaymentRequested, PaymentSettled, outcome_event_id

AT = datetime(2026, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _envelope() -> dict:
    return {"event_id": uuid4(), "occurred_at": AT, "producer": "test", "correlation_id": uuid4()}


@pytest.mark.parametrize("result, status", [("created", "posted"), ("exists", "pending"), ("exceeds_credits", None)])
def test_payment_outcome_parses_into_the_contract(result: str, status: str | None) -> None:
    """Settled and rejected outcomes of a payment parse back with every field as decided."""
    event = PaymentRequested(
        **_envelope(),
        kind="p2m_dynamic_qr",
        rail="raast",
        payer_account_id="acc_00000001",
        payee_account_id="acc_00000002",
        amount=4_321,
    )
    decision = Decision(Request(event, 0, 0, b""), result, status, "acc_00000001", "acc_00000002", 4_321)
    key, value = outcome_bytes(decision)
    outcome = parse_event(value)
    assert key == "acc_00000001"
    assert isinstance(outcome, PaymentSettled if status else PaymentRejected)
    assert outcome.event_id == outcome_event_id(event.event_id) and outcome.result == result
    assert outcome.request_occurred_at == AT and outcome.occurred_at == AT
    assert (outcome.amount, outcome.kind, outcome.rail, outcome.payee_account_id) == (
        4_321,
        "p2m_dynamic_qr",
        "raast",
        "acc_00000002",
    )
    if isinstance(outcome, PaymentSettled):
        assert outcome.status == status and outcome.transfer_id == event.event_id


def test_cash_outcome_has_no_kind_or_rail() -> None:
    """A cash-in outcome names agent (debited) and customer (credited), without payment kind or rail."""
    event = CashIn(**_envelope(), customer_account_id="acc_0000000c", agent_account_id="acc_0000000a", amount=9)
    decision = Decision(Request(event, 0, 0, b""), "created", "posted", "acc_0000000a", "acc_0000000c", 9)
    outcome = parse_event(outcome_bytes(decision)[1])
    assert isinstance(outcome, PaymentSettled)
    assert outcome.kind is None and outcome.rail is None and outcome.request_type == "cash.in"


def test_partition_cache_agrees_with_kafka_partitioner() -> None:
    """The memoised partition is the one aiokafka's keyed send would choose."""
    from aiokafka.partitioner import DefaultPartitioner

    partitions = list(range(6))
    for key in (b"acc_00000001", b"acc_ffffffff", b"x"):
        assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
        assert partition_for(key, partitions) == partition_for(key, partitions)


def test_rows_are_copied_in_table_column_order() -> None:
    """Transfers and request records go to COPY as they are, so their fields follow the columns."""
    from consumers.ledger import sql
    from consumers.ledger.domain import RequestRecord, Transfer

    assert Transfer._fields == sql.TRANSFER_COLUMNS
    assert RequestRecord._fields == sql.REQUEST_COLUMNS
