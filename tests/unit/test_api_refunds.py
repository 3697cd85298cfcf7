"""Refunds' pure rules: how much may be refunded (producers/api/refunds.py), the event a refund publishes,
and how the views consumer moves a refund on from the ledger's outcome (consumers/views/transitions.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.views.transitions import Change, Target, change_for
from producers.api.problems import ApiError
from producers.api.refunds import Refunds, check_refundable
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled, RefundRequested

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PAYER = "acc_" + "1" * 32
PAYEE = "acc_" + "2" * 32


@pytest.mark.parametrize("status", ["processing", "requires_capture", "failed", "canceled", "expired"])
def test_only_a_succeeded_payment_can_be_refunded(status: str) -> None:
    """Any status but succeeded: 409 payment_not_refundable naming the status."""
    with pytest.raises(ApiError) as refused:
        check_refundable(status=status, captured=1_000, reserved=0, asked=None)
    problem = refused.value.problem
    assert (problem.status, problem.code, problem.param) == (409, "payment_not_refundable", "payment")
    assert f"`{status}`" in problem.detail


def test_the_amount_defaults_to_what_is_still_refundable() -> None:
    """No amount: captured less the refunds that have not failed; an amount up to that is taken as asked."""
    assert check_refundable(status="succeeded", captured=10_000, reserved=0, asked=None) == 10_000
    assert check_refundable(status="succeeded", captured=10_000, reserved=6_000, asked=None) == 4_000
    assert check_refundable(status="succeeded", captured=10_000, reserved=6_000, asked=4_000) == 4_000
    assert check_refundable(status="succeeded", captured=10_000, reserved=6_000, asked=1) == 1


def test_more_than_is_refundable_is_a_422_naming_what_is_left() -> None:
    """An amount above the refundable rest: 422 invalid_parameter on amount, saying how much is left."""
    with pytest.raises(ApiError) as refused:
        check_refundable(status="succeeded", captured=10_000, reserved=6_000, asked=4_001)
    problem = refused.value.problem
    assert (problem.status, problem.code, problem.param) == (422, "invalid_parameter", "amount")
    assert "4000 paisa" in problem.detail


@pytest.mark.parametrize("asked", [None, 1])
def test_a_payment_refunded_in_full_is_not_refundable(asked: int | None) -> None:
    """Nothing left (refunds succeeded or still processing): 409 payment_not_refundable, whatever is asked."""
    with pytest.raises(ApiError) as refused:
        check_refundable(status="succeeded", captured=10_000, reserved=10_000, asked=asked)
    assert refused.value.problem.code == "payment_not_refundable"


def test_a_refund_is_asked_of_the_payee_for_the_payer_in_the_payments_flow() -> None:
    """The event: the payment's payee pays back its payer, keyed by that payee, correlated with the payment."""

    async def publish(event: Any) -> None:
        raise AssertionError("not published here")

    payment_event = uuid.uuid4()
    payment = {"request_event_id": payment_event, "payer": PAYER, "payee": PAYEE}
    event = Refunds(pool=None, publish=publish, now=lambda: AT)._event(payment, amount=700, refund_id="re_" + "a" * 32)  # type: ignore[arg-type]
    assert isinstance(event, RefundRequested)
    assert (event.payer_account_id, event.payee_account_id, event.amount) == (PAYEE, PAYER, 700)
    assert event.payment_event_id == event.correlation_id == payment_event
    assert event.partition_key == PAYEE and event.reference == "re_" + "a" * 32 and event.occurred_at == AT


def _common(request: uuid.UUID) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": AT,
        "producer": "kpsandbox-ledger",
        "correlation_id": request,
        "request_event_id": request,
        "request_type": "payment.refund_requested",
        "request_occurred_at": AT,
        "payer_account_id": PAYEE,
        "amount": 700,
    }


def test_a_settled_refund_succeeds() -> None:
    """Settled (created or exists) → the refund succeeds, guarded by its own request."""
    request = uuid.uuid4()
    for result in ("created", "exists"):
        settled = PaymentSettled(**_common(request), result=result, status="posted", transfer_id=uuid.uuid4())
        assert change_for(settled, Target("refund", "re_1")) == Change("refund", "re_1", "succeeded", request)


def test_a_rejected_refund_fails_with_the_result_code_and_a_message() -> None:
    """Rejected → failed, failure_code = the ledger's result (exceeds_credits: the payee spent the money)."""
    request = uuid.uuid4()
    change = change_for(PaymentRejected(**_common(request), result="exceeds_credits"), Target("refund", "re_1"))
    assert change == Change("refund", "re_1", "failed", request, failure_code="exceeds_credits")
    assert change.failure_message and "balance" in change.failure_message


def test_a_refund_outcome_never_touches_the_payments_own_status() -> None:
    """Whatever the outcome, a refund target changes the refund row, not api_payments' status."""
    request = uuid.uuid4()
    fields = {**_common(request), "request_type": "payment.requested"}
    expired = PaymentExpired(**fields, result="expired", status="expired", transfer_id=uuid.uuid4())
    assert change_for(expired, Target("refund", "re_1")).table == "refund"
