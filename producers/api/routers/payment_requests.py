"""`/v1/payment_requests`: ask to be paid, read the request, approve or decline it."""

from __future__ import annotations

from fastapi import APIRouter

from producers.api.deps import PaymentRequestsDep, TenantDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.payment_requests import PaymentRequest, PaymentRequestCreate

router = APIRouter(prefix="/v1/payment_requests", tags=["payment requests"], route_class=IdempotentRoute)


@router.post(
    "",
    status_code=201,
    responses=problem_responses(400, 401, 404, 413, 422, 503),
    summary="Request a payment",
)
async def create_payment_request(
    body: PaymentRequestCreate, tenant: TenantDep, payment_requests: PaymentRequestsDep
) -> PaymentRequest:
    """Asks one of your accounts (by id or by its mobile number) to pay another: `pending` until the
    payer approves or declines it, or `expires_in` seconds pass (then `expired`)."""
    return await payment_requests.create(tenant=tenant, request=body)


@router.get("/{payment_request_id}", responses=problem_responses(401, 404, 503), summary="Read a payment request")
async def get_payment_request(
    payment_request_id: str, tenant: TenantDep, payment_requests: PaymentRequestsDep
) -> PaymentRequest:
    """One of your payment requests; a pending one past its `expires_at` reads as `expired`."""
    return await payment_requests.get(tenant=tenant, request_id=payment_request_id)


@router.post(
    "/{payment_request_id}/approve",
    responses=problem_responses(401, 404, 409, 422, 503),
    summary="Approve a payment request",
)
async def approve_payment_request(
    payment_request_id: str, tenant: TenantDep, payment_requests: PaymentRequestsDep
) -> PaymentRequest:
    """The payer approves: a p2p payment payer → payee is made (`payment`, `processing` until the
    ledger decides). A request that is not pending is 409 (`payment_request_expired` once expired)."""
    return await payment_requests.approve(tenant=tenant, request_id=payment_request_id)


@router.post(
    "/{payment_request_id}/decline",
    responses=problem_responses(401, 404, 409, 503),
    summary="Decline a payment request",
)
async def decline_payment_request(
    payment_request_id: str, tenant: TenantDep, payment_requests: PaymentRequestsDep
) -> PaymentRequest:
    """The payer declines: no payment is made. A request that is not pending is 409."""
    return await payment_requests.decline(tenant=tenant, request_id=payment_request_id)
