"""`GET /healthz`: can the API reach PostgreSQL and Kafka right now?

Only the API's own dependencies are checked, each within HEALTH_CHECK_TIMEOUT_S. Whether the
ledger and the metrics consumer run is for `kpsandbox serve` / `status` to say, which supervise
them as separate processes (each with its own /metrics).
"""

from __future__ import annotations

import asyncio
from typing import Final

from fastapi import APIRouter, Response

from producers.api.deps import ResourcesDep
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE
from schemas.api.health import CheckResult, Health, HealthChecks

HEALTH_CHECK_TIMEOUT_S: Final = 2.0

router = APIRouter(tags=["health"])


async def _postgres(held: ResourcesDep) -> CheckResult:
    try:
        await asyncio.wait_for(held.pool.fetchval("SELECT 1"), HEALTH_CHECK_TIMEOUT_S)
    except DB_UNAVAILABLE:
        return "unreachable"
    return "ok"


async def _kafka(held: ResourcesDep) -> CheckResult:
    try:  # a live metadata request, not the producer's cached view
        await asyncio.wait_for(held.producer.client.fetch_all_metadata(), HEALTH_CHECK_TIMEOUT_S)
    except KAFKA_UNAVAILABLE:
        return "unreachable"
    return "ok"


@router.get(
    "/healthz",
    summary="Health of the API",
    responses={503: {"model": Health, "description": "A dependency did not answer."}},
)
async def healthz(held: ResourcesDep, response: Response) -> Health:
    """200 `ok` when PostgreSQL and Kafka answer within HEALTH_CHECK_TIMEOUT_S each, else 503.
    Ledger and metrics health come with `kpsandbox serve`, which supervises those processes."""
    postgres, kafka = await asyncio.gather(_postgres(held), _kafka(held))
    checks = HealthChecks(postgres=postgres, kafka=kafka)
    healthy = postgres == "ok" and kafka == "ok"
    response.status_code = 200 if healthy else 503
    return Health(status="ok" if healthy else "unavailable", checks=checks)
