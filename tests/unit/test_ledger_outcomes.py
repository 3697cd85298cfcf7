"""Outcome events written by the ledger's string templates are valid contract events with the right ids."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from uuid import UUID, uuid4

import pytest
from jsonschema import Draft202012Validator

from consumers.ledger.outbox import partition_for
from consumers.ledger.outcomes import expiry_outcome_bytes, outcome_bytes
from consumers.ledger.reading import fingerprint
from consumers.ledger.records import Decision, Pending, Request
from consumers.ledger.wire import from_model
from schemas.cash import CashIn
from schemas.events import parse_event
from schemas.payments import (
    PaymentExpired,
    PaymentRejected,
    PaymentRequested,
    PaymentSettled,
    expiry_outcome_event_id,
    outcome_event_id,
)
from tests.conftest import REPO_ROOT

AT = datetime(2026, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


def _envelope() -> dict:
    return {"event_id": uuid4(), "occurred_at": AT, "producer": "test", "correlation_id": uuid4()}


@cache
def _validator(event_type: str) -> Draft202012Validator:
    schema = json.loads((REPO_ROOT / "docs" / "schemas" / f"{event_type}.json").read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _published(value: bytes):  # type: ignore[no-untyped-def]
    """The outcome as a client sees it: valid under its committed JSON Schema, parsed by the models."""
    document = json.loads(value)
    _validator(document["event_type"]).validate(document)
    return parse_event(value)


def _payment(amount: int = 4_321) -> PaymentRequested:
    return PaymentRequested(
        **_envelope(),
        kind="p2m_dynamic_qr",
        rail="raast",
        payer_account_id="acc_00000001",
        payee_account_id="acc_00000002",
        amount=amount,
    )


def _decision(event: PaymentRequested, result: str, status: str | None) -> Decision:
    request = Request(from_model(event), 0, 0, fingerprint(from_model(event)))
    return Decision(request, result, status, "acc_00000001", "acc_00000002", event.amount)


@pytest.mark.parametrize("result, status", [("created", "posted"), ("exists", "pending"), ("exceeds_credits", None)])
def test_payment_outcome_parses_into_the_contract(result: str, status: str | None) -> None:
    """Settled and rejected outcomes of a payment are schema-valid and parse back with every field as decided."""
    event = _payment()
    decision = _decision(event, result, status)
    key, value = outcome_bytes(decision)
    outcome = _published(value)
    assert key == "acc_00000001"
    assert isinstance(outcome, PaymentSettled if status else PaymentRejected)
    assert outcome.schema_version == 3
    assert outcome.event_id == outcome_event_id(event.event_id, result, fingerprint(from_model(event)))
    assert outcome.result == result and outcome.request_event_id == event.event_id
    assert outcome.request_occurred_at == AT and outcome.occurred_at == AT
    assert (outcome.amount, outcome.kind, outcome.rail, outcome.payee_account_id) == (
        4_321,
        "p2m_dynamic_qr",
        "raast",
        "acc_00000002",
    )
    if isinstance(outcome, PaymentSettled):
        assert outcome.status == status and outcome.transfer_id == event.event_id
    # Every field the contract names, and nothing it would ignore (its models ignore unknown keys).
    assert set(json.loads(value)) == set(type(outcome).model_fields)
    assert b'"occurred_at":"2026-' in value and value.count(b'Z"') == 2  # UTC times as the contract writes them


def test_each_distinct_answer_to_one_request_has_its_own_stable_id() -> None:
    """created, exists, exists_with_different_amount and two different conflicts: five ids; re-encoding keeps each."""
    event = _payment()
    conflict_amount = event.model_copy(update={"amount": 9_999})
    conflict_fields = event.model_copy(update={"rail": "wallet"})
    conflict_both = event.model_copy(update={"rail": "card"})
    decisions = [
        _decision(event, "created", "posted"),
        _decision(event, "exists", "posted"),
        _decision(conflict_amount, "exists_with_different_amount", None),
        _decision(conflict_fields, "exists_with_different_fields", None),
        _decision(conflict_both, "exists_with_different_fields", None),
    ]
    ids = [_published(outcome_bytes(d)[1]).event_id for d in decisions]
    assert len(set(ids)) == len(decisions)
    assert [_published(outcome_bytes(d)[1]).event_id for d in decisions] == ids
    assert outcome_bytes(decisions[0]) == outcome_bytes(_decision(event, "created", "posted"))
    assert {_published(outcome_bytes(d)[1]).request_event_id for d in decisions} == {event.event_id}


def test_cash_outcome_has_no_kind_or_rail() -> None:
    """A cash-in outcome names agent (debited) and customer (credited), without payment kind or rail."""
    event = CashIn(**_envelope(), customer_account_id="acc_0000000c", agent_account_id="acc_0000000a", amount=9)
    decision = Decision(
        Request(from_model(event), 0, 0, fingerprint(from_model(event))),
        "created",
        "posted",
        "acc_0000000a",
        "acc_0000000c",
        9,
    )
    outcome = _published(outcome_bytes(decision)[1])
    assert isinstance(outcome, PaymentSettled)
    assert outcome.kind is None and outcome.rail is None and outcome.request_type == "cash.in"


PENDING = Pending(
    id=UUID("0b7f6a52-3f0e-4c61-9a55-2d0f6f3b7a10"),
    debit_account_id="acc_00000001",
    credit_account_id="mch_00000002",
    amount=125_000,
    code="ecommerce",
    expires_at=AT + timedelta(hours=1),
    source_partition=3,
    source_producer="shop",
    correlation_id=UUID("1c7f6a52-3f0e-4c61-9a55-2d0f6f3b7a10"),
    requested_at=AT,
    rail="card",
)


def test_expiry_outcome_parses_into_the_contract() -> None:
    """An expiry is a valid payment.expired keyed by the payer, with the id derived from the pending id."""
    transfer_id = uuid4()
    key, value = expiry_outcome_bytes(PENDING, transfer_id)
    outcome = _published(value)
    assert key == "acc_00000001"
    assert isinstance(outcome, PaymentExpired)
    assert outcome.event_id == expiry_outcome_event_id(PENDING.id)
    assert outcome.event_id != outcome_event_id(PENDING.id, "expired", b"")
    assert (outcome.request_event_id, outcome.request_type, outcome.transfer_id) == (
        PENDING.id,
        "payment.requested",
        transfer_id,
    )
    assert (outcome.result, outcome.status, outcome.amount, outcome.kind, outcome.rail) == (
        "expired",
        "expired",
        125_000,
        "ecommerce",
        "card",
    )
    assert (outcome.occurred_at, outcome.request_occurred_at) == (AT + timedelta(hours=1), AT)
    assert (outcome.payee_account_id, outcome.correlation_id) == ("mch_00000002", PENDING.correlation_id)
    assert expiry_outcome_bytes(PENDING, transfer_id) == (key, value)


def test_expiry_of_an_old_row_falls_back_to_the_pending_id_and_expiry_time() -> None:
    """A pending row from before migration 0004 (no correlation, request time, rail) and a cash code still parse."""
    old = replace(PENDING, code="cash_out", correlation_id=None, requested_at=None, rail=None, source_producer="")
    outcome = _published(expiry_outcome_bytes(old, uuid4())[1])
    assert isinstance(outcome, PaymentExpired)
    assert outcome.correlation_id == old.id and outcome.request_occurred_at == old.expires_at
    assert outcome.kind is None and outcome.rail is None


def test_a_pending_transfer_without_expiry_cannot_expire() -> None:
    """Encoding an expiry for a pending transfer with no timeout is a programming error, said plainly."""
    with pytest.raises(ValueError, match="no expiry time"):
        expiry_outcome_bytes(replace(PENDING, expires_at=None), uuid4())


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
    from consumers.ledger.records import RequestRecord, Transfer

    assert Transfer._fields == sql.TRANSFER_COLUMNS
    assert RequestRecord._fields == sql.REQUEST_COLUMNS
