"""`/v1/test_helpers/test_clocks`: make a frozen time, read it, move it forward (producers/api/test_clocks.py)."""

from __future__ import annotations

from fastapi import APIRouter

from producers.api.deps import TenantDep, TestClocksDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.test_clocks import TestClock, TestClockAdvance, TestClockCreate

router = APIRouter(prefix="/v1/test_helpers/test_clocks", tags=["test helpers"], route_class=IdempotentRoute)


@router.post("", status_code=201, responses=problem_responses(400, 401, 413, 422, 503), summary="Create a test clock")
async def create_test_clock(body: TestClockCreate, tenant: TenantDep, clocks: TestClocksDep) -> TestClock:
    """A clock frozen at `frozen_time`. Open accounts with `"test_clock": id` to put them on it."""
    return await clocks.create(tenant=tenant, request=body)


@router.get("/{test_clock_id}", responses=problem_responses(401, 404, 503), summary="Read a test clock")
async def get_test_clock(test_clock_id: str, tenant: TenantDep, clocks: TestClocksDep) -> TestClock:
    """The clock's time, and `advancing` while what its last advance made due is still being sent."""
    return await clocks.get(tenant=tenant, clock_id=test_clock_id)


@router.post(
    "/{test_clock_id}/advance",
    responses=problem_responses(400, 401, 404, 413, 422, 503),
    summary="Advance a test clock",
)
async def advance_test_clock(
    test_clock_id: str, body: TestClockAdvance, tenant: TenantDep, clocks: TestClocksDep
) -> TestClock:
    """Moves the clock forward (never back: 422 `test_clock_not_forward`). Authorisations of its
    accounts whose `expires_at` it passes expire, and their `payment.expired` webhooks follow."""
    return await clocks.advance(tenant=tenant, clock_id=test_clock_id, request=body)
