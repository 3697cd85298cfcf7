"""`/v1/payments`: pay, read (optionally waiting for the ledger), capture and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producers.api.deps import PaymentsDep, SecretKeyDep, TenantDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.payments import WAIT_MAX_S, Payment, PaymentCapture, PaymentCreate

router = APIRouter(prefix="/v1/payments", tags=["payments"], route_class=IdempotentRoute)

WaitQuery = Annotated[
    float | None,
    Query(
        gt=0,
        le=WAIT_MAX_S,
        description=f"Wait up to this many seconds (at most {WAIT_MAX_S:g}) for a final status before answering.",
    ),
]


@router.post(
    "",
    status_code=202,
    responses=problem_responses(400, 401, 404, 413, 422, 503),
    summary="Make a payment",
)
async def create_payment(body: PaymentCreate, tenant: TenantDep, payments: PaymentsDep) -> Payment:
    """Pays from one of your accounts to another (by id or by the payee's mobile number). Answers
    `processing` at once; the ledger's decision follows (read it with `GET /v1/payments/{id}?wait=5`).
    With `"capture_method": "manual"` the payment is only authorised: `requires_capture`."""
    return await payments.create(tenant=tenant, request=body)


@router.get("/{payment_id}", responses=problem_responses(401, 404, 422, 503), summary="Read a payment")
async def get_payment(payment_id: str, key: SecretKeyDep, payments: PaymentsDep, wait: WaitQuery = None) -> Payment:
    """One of your payments. With `wait=N`, answers as soon as its status is final
    (`succeeded`, `failed`, `canceled`, `expired` or `requires_capture`), or after N seconds."""
    return await payments.get_by_key(key=key, payment_id=payment_id, wait_s=wait)


@router.post(
    "/{payment_id}/capture",
    status_code=202,
    responses=problem_responses(400, 401, 404, 409, 413, 422, 503),
    summary="Capture an authorised payment",
)
async def capture_payment(
    payment_id: str, tenant: TenantDep, payments: PaymentsDep, body: PaymentCapture | None = None
) -> Payment:
    """Captures a `requires_capture` payment, in full or (with `amount`) in part; `processing`
    until the ledger posts it. Any other status is 409 `payment_not_capturable`."""
    return await payments.capture(tenant=tenant, payment_id=payment_id, request=body or PaymentCapture())


@router.post(
    "/{payment_id}/cancel",
    status_code=202,
    responses=problem_responses(401, 404, 409, 503),
    summary="Cancel an authorised payment",
)
async def cancel_payment(payment_id: str, tenant: TenantDep, payments: PaymentsDep) -> Payment:
    """Releases a `requires_capture` payment's reservation; `processing` until the ledger voids it."""
    return await payments.cancel(tenant=tenant, payment_id=payment_id)
