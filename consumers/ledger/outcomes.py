"""Outcome events: what the ledger tells the world about each request it decided."""

from __future__ import annotations

from typing import Final

from consumers.ledger.domain import Decision
from schemas.payments import PaymentRejected, PaymentRequested, PaymentSettled, outcome_event_id

OUTCOME_PRODUCER: Final = "ledger"


def outcome_bytes(decision: Decision) -> tuple[str, bytes]:
    """(Kafka key, JSON value) of the one outcome of a request; the same ids every time.

    `event_id` is derived from the request id and `occurred_at` is the request's simulated time,
    so a republished outcome (outbox redelivery, duplicate request) is recognisably the same one.
    """
    event = decision.request.event
    common = {
        "event_id": outcome_event_id(event.event_id),
        "occurred_at": event.occurred_at,
        "producer": OUTCOME_PRODUCER,
        "correlation_id": event.correlation_id,
        "request_event_id": event.event_id,
        "request_type": event.event_type,
        "request_occurred_at": event.occurred_at,
        "payer_account_id": decision.debit_account_id,
        "payee_account_id": decision.credit_account_id,
        "amount": decision.amount,
        "currency": "PKR",
        "kind": event.kind if isinstance(event, PaymentRequested) else None,
        "rail": event.rail if isinstance(event, PaymentRequested) else None,
    }
    if decision.settled:
        settled = PaymentSettled.model_construct(
            **common, result=decision.result, status=decision.status, transfer_id=event.event_id
        )
        return decision.debit_account_id, settled.model_dump_json().encode()
    rejected = PaymentRejected.model_construct(**common, result=decision.result)
    return decision.debit_account_id, rejected.model_dump_json().encode()
