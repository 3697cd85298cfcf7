"""`/v1/refunds`: refund a succeeded payment, read the refund (optionally waiting for the ledger)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producers.api.deps import RefundsDep, TenantDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.payments import WAIT_MAX_S
from schemas.api.refunds import Refund, RefundCreate

router = APIRouter(prefix="/v1/refunds", tags=["refunds"], route_class=IdempotentRoute)

WaitQuery = Annotated[
    float | None,
    Query(gt=0, le=WAIT_MAX_S, description=f"Wait up to this many seconds (at most {WAIT_MAX_S:g}) for the outcome."),
]


@router.post(
    "",
    status_code=202,
    responses=problem_responses(400, 401, 404, 409, 413, 422, 503),
    summary="Refund a payment",
)
async def create_refund(body: RefundCreate, tenant: TenantDep, refunds: RefundsDep) -> Refund:
    """Pays (part of) a `succeeded` payment back from its payee to its payer. Answers `processing`;
    the ledger's decision follows (`succeeded`, or `failed` with its `failure_code`). A payment that
    is not `succeeded`, or is refunded in full, is 409 `payment_not_refundable`; more than is still
    refundable is 422 on `amount`."""
    return await refunds.create(tenant=tenant, request=body)


@router.get("/{refund_id}", responses=problem_responses(401, 404, 422, 503), summary="Read a refund")
async def get_refund(refund_id: str, tenant: TenantDep, refunds: RefundsDep, wait: WaitQuery = None) -> Refund:
    """One of your refunds; with `wait=N`, as soon as it is final or after N seconds."""
    return await refunds.get(tenant=tenant, refund_id=refund_id, wait_s=wait)
