"""Which webhook events a status change announces, and their `data` (consumers/webhooks/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.webhooks.events import EventSpec, events_for, object_data
from schemas.webhooks import WEBHOOK_EVENT_TYPES

AT = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)
PAYMENT_ID = "pay_" + "1" * 32
REFUND_ID = "re_" + "2" * 32
TOP_UP_ID = "tu_" + "3" * 32


def _payment_row(**changes: Any) -> dict[str, Any]:
    return {
        "id": PAYMENT_ID,
        "status": "succeeded",
        "payer": "acc_" + "a" * 32,
        "payee": "acc_" + "b" * 32,
        "amount": 25_000,
        "amount_captured": 25_000,
        "amount_refunded": 0,
        "kind": "p2p",
        "capture_method": "automatic",
        "expires_at": None,
        "failure_code": None,
        "failure_message": None,
        "created_at": AT,
        "updated_at": AT,
        "tenant_id": "ten_" + "9" * 32,
    } | changes


@pytest.mark.parametrize("status", ["succeeded", "failed", "requires_capture", "canceled", "expired"])
def test_a_payment_reaching_a_status_announces_payment_dot_that_status(status: str) -> None:
    """Each final (or capturable) payment status is its own event type."""
    assert events_for(kind="payment", object_id=PAYMENT_ID, status=status) == [
        EventSpec(f"payment.{status}", "payment", PAYMENT_ID)  # type: ignore[arg-type]
    ]


def test_a_payment_back_to_processing_announces_nothing() -> None:
    """`processing` is not an event: nobody waits to hear a payment is still undecided."""
    assert events_for(kind="payment", object_id=PAYMENT_ID, status="processing") == []


def test_a_succeeded_refund_announces_itself_and_its_payment_refunded() -> None:
    """refund.succeeded, then payment.refunded about the refund's payment."""
    assert events_for(kind="refund", object_id=REFUND_ID, status="succeeded", payment_id=PAYMENT_ID) == [
        EventSpec("refund.succeeded", "refund", REFUND_ID),
        EventSpec("payment.refunded", "payment", PAYMENT_ID),
    ]


def test_a_failed_refund_announces_refund_failed_only() -> None:
    """The payment did not change: no payment event."""
    assert events_for(kind="refund", object_id=REFUND_ID, status="failed", payment_id=PAYMENT_ID) == [
        EventSpec("refund.failed", "refund", REFUND_ID)
    ]


def test_top_ups_announce_success_only() -> None:
    """top_up.succeeded exists; a failed top-up has no event type yet, so announces nothing."""
    assert events_for(kind="top_up", object_id=TOP_UP_ID, status="succeeded") == [
        EventSpec("top_up.succeeded", "top_up", TOP_UP_ID)
    ]
    assert events_for(kind="top_up", object_id=TOP_UP_ID, status="failed") == []


def test_every_announced_type_is_in_the_contract() -> None:
    """No status maps to a type the endpoints API would refuse as a subscription."""
    statuses = ["succeeded", "failed", "requires_capture", "canceled", "expired", "processing"]
    specs = [
        spec
        for kind in ("payment", "refund", "top_up")
        for status in statuses
        for spec in events_for(kind=kind, object_id="x", status=status, payment_id="y")  # type: ignore[arg-type]
    ]
    assert specs and all(spec.type in WEBHOOK_EVENT_TYPES for spec in specs)


def test_payment_data_is_the_api_object_as_json() -> None:
    """`data` carries the API's own field names and JSON values (object, currency, ISO times), not the row's."""
    data = object_data("payment", _payment_row())
    assert data["object"] == "payment" and data["id"] == PAYMENT_ID and data["currency"] == "PKR"
    assert data["amount"] == 25_000 and data["created_at"] == "2025-01-01T09:30:00Z"
    assert "tenant_id" not in data


def test_refund_data_names_its_payment_as_the_api_does() -> None:
    """The row's payment_id becomes the API's `payment` field."""
    row = {
        "id": REFUND_ID,
        "status": "succeeded",
        "payment_id": PAYMENT_ID,
        "amount": 1_000,
        "reason": None,
        "failure_code": None,
        "failure_message": None,
        "created_at": AT,
        "updated_at": AT,
    }
    data = object_data("refund", row)
    assert data["object"] == "refund" and data["payment"] == PAYMENT_ID and "payment_id" not in data
