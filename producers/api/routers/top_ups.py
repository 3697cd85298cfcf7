"""`/v1/test_helpers/top_ups`: put money into an account, as cash at the tenant's sandbox agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producers.api.deps import TenantDep, TopUpsDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.payments import WAIT_MAX_S, TopUp, TopUpCreate

router = APIRouter(prefix="/v1/test_helpers/top_ups", tags=["test helpers"], route_class=IdempotentRoute)

WaitQuery = Annotated[
    float | None,
    Query(gt=0, le=WAIT_MAX_S, description=f"Wait up to this many seconds (at most {WAIT_MAX_S:g}) for the outcome."),
]


@router.post(
    "",
    status_code=202,
    responses=problem_responses(400, 401, 404, 413, 422, 503),
    summary="Top up an account",
)
async def create_top_up(body: TopUpCreate, tenant: TenantDep, top_ups: TopUpsDep) -> TopUp:
    """A cash-in of `amount` paisa into one of your accounts at your sandbox agent (opened on first
    use). Answers `processing`; the ledger's decision follows (`succeeded` or `failed`)."""
    return await top_ups.create(tenant=tenant, request=body)


@router.get("/{top_up_id}", responses=problem_responses(401, 404, 422, 503), summary="Read a top-up")
async def get_top_up(top_up_id: str, tenant: TenantDep, top_ups: TopUpsDep, wait: WaitQuery = None) -> TopUp:
    """One of your top-ups; with `wait=N`, as soon as it is final or after N seconds."""
    return await top_ups.get(tenant=tenant, top_up_id=top_up_id, wait_s=wait)
