"""The views consumer's pure mapping from a ledger outcome to an API status (consumers/views/transitions.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.views.consumer import request_event_id
from consumers.views.transitions import Change, Target, change_for
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PAYER = "acc_" + "1" * 32


def _common(request: uuid.UUID, amount: int = 100) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": AT,
        "producer": "kpsandbox-ledger",
        "correlation_id": request,
        "request_event_id": request,
        "request_occurred_at": AT,
        "payer_account_id": PAYER,
        "amount": amount,
    }


def _settled(request: uuid.UUID, status: str, amount: int = 100) -> PaymentSettled:
    return PaymentSettled(
        **_common(request, amount),
        request_type="payment.requested",
        result="created",
        status=status,
        transfer_id=uuid.uuid4(),
    )


def _rejected(request: uuid.UUID, result: str) -> PaymentRejected:
    return PaymentRejected(**_common(request), request_type="payment.requested", result=result)


@pytest.mark.parametrize(
    ("status", "expected", "captured"),
    [("posted", "succeeded", 100), ("pending", "requires_capture", None), ("voided", "canceled", None)],
)
def test_a_settled_payment_takes_its_transfers_status(status: str, expected: str, captured: int | None) -> None:
    """Settled + posted/pending/voided → succeeded (amount captured) / requires_capture / canceled."""
    request = uuid.uuid4()
    change = change_for(_settled(request, status), Target("payment", "pay_1"))
    assert change == Change("payment", "pay_1", expected, request, amount_captured=captured)


def test_a_rejected_payment_fails_with_the_result_code_and_a_message() -> None:
    """Rejected → failed, failure_code = the ledger's result, a human failure_message."""
    request = uuid.uuid4()
    change = change_for(_rejected(request, "exceeds_credits"), Target("payment", "pay_1"))
    assert change.status == "failed" and change.failure_code == "exceeds_credits" and change.awaited == request
    assert change.failure_message and "balance" in change.failure_message


def test_a_partial_capture_records_the_amount_moved() -> None:
    """A capture's settled outcome → succeeded with the posted amount as amount_captured."""
    request = uuid.uuid4()
    change = change_for(_settled(request, "posted", amount=60), Target("capture", "pay_1"))
    assert change.status == "succeeded" and change.amount_captured == 60


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("pending_transfer_expired", "expired"),
        ("pending_transfer_already_voided", "canceled"),
        ("exceeds_pending_transfer_amount", "requires_capture"),
    ],
)
def test_a_refused_capture_leaves_the_state_the_authorisation_is_in(result: str, expected: str) -> None:
    """A refused capture: the authorisation's end state if it ended, else capturable again."""
    change = change_for(_rejected(uuid.uuid4(), result), Target("capture", "pay_1"))
    assert change.status == expected and change.failure_code == result


def test_an_expiry_applies_whatever_request_the_payment_awaits() -> None:
    """payment.expired → expired, unguarded by the awaited request (`awaited` is None)."""
    pending = uuid.uuid4()
    expired = PaymentExpired(
        **_common(pending),
        request_type="payment.requested",
        result="expired",
        status="expired",
        transfer_id=uuid.uuid4(),
    )
    assert change_for(expired, Target("payment", "pay_1")) == Change("payment", "pay_1", "expired", None)


def test_top_ups_succeed_or_fail() -> None:
    """A cash-in settled → succeeded; rejected → failed with its code."""
    request = uuid.uuid4()
    assert change_for(_settled(request, "posted"), Target("top_up", "tu_1")).status == "succeeded"
    failed = change_for(_rejected(request, "account_not_found"), Target("top_up", "tu_1"))
    assert failed.status == "failed" and failed.failure_code == "account_not_found"


def test_the_request_id_is_found_without_a_parse() -> None:
    """The request_event_id is read from the raw JSON; records without one give None."""
    request = uuid.uuid4()
    assert request_event_id(_settled(request, "posted").model_dump_json().encode()) == request
    assert request_event_id(b"not json") is None
    assert request_event_id(None) is None
