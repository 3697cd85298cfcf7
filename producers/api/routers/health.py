"""`GET /readyz` (the API process) and `GET /healthz` (the API, the ledger and the metrics consumer).

`/readyz` checks what the API itself needs — PostgreSQL and Kafka — and is what `kpsandbox serve`,
`up --apps` and the tests wait for after starting the API: the API alone can be ready while the
ledger is still starting. `/healthz` is the sandbox as a startup sees it: it adds the ledger and the
metrics consumer, probed exactly as `kpsandbox status` probes them (GET on their /metrics port from
the settings, infra/local/apps.py). Every check runs in parallel within its own time bound, so the
slowest answer takes at most HEALTH_CHECK_TIMEOUT_S; a failed check's detail says how to fix it.
"""

from __future__ import annotations

import asyncio
from typing import Final

from fastapi import APIRouter, Response

from infra.local.apps import LEDGER, METRICS, AppSpec, http_ok
from producers.api.deps import ResourcesDep
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE
from schemas.api.health import Check, Health, HealthChecks, HealthStatus, Ready, ReadyChecks

HEALTH_CHECK_TIMEOUT_S: Final = 2.0
APP_CHECK_TIMEOUT_S: Final = 1.0  # a local /metrics answers in milliseconds; a dead port refuses at once
START_SERVICES: Final = "start it with `kpsandbox up`"
START_APPS: Final = "start it with `kpsandbox up --apps` (or `kpsandbox serve`)"

router = APIRouter(tags=["health"])


async def _postgres(held: ResourcesDep) -> Check:
    try:
        await asyncio.wait_for(held.pool.fetchval("SELECT 1"), HEALTH_CHECK_TIMEOUT_S)
    except DB_UNAVAILABLE:
        return Check(
            ok=False,
            detail=f"PostgreSQL did not answer within {HEALTH_CHECK_TIMEOUT_S:g} s: {START_SERVICES} "
            "(or check KPSANDBOX_DATABASE_URL)",
        )
    return Check(ok=True, detail="PostgreSQL answers")


async def _kafka(held: ResourcesDep) -> Check:
    try:  # a live metadata request, not the producer's cached view
        await asyncio.wait_for(held.producer.client.fetch_all_metadata(), HEALTH_CHECK_TIMEOUT_S)
    except KAFKA_UNAVAILABLE:
        return Check(
            ok=False,
            detail=f"Kafka did not answer within {HEALTH_CHECK_TIMEOUT_S:g} s: {START_SERVICES} "
            "(or check KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS)",
        )
    return Check(ok=True, detail="Kafka answers")


async def _app(held: ResourcesDep, spec: AppSpec) -> Check:
    """The app's health URL answers 200 (urllib in a worker thread, bounded twice: socket and wait)."""
    url = spec.url(held.settings)
    try:
        ok = await asyncio.wait_for(
            asyncio.to_thread(http_ok, str(url), APP_CHECK_TIMEOUT_S), APP_CHECK_TIMEOUT_S + HEALTH_CHECK_TIMEOUT_S
        )
    except TimeoutError:
        ok = False
    if ok:
        return Check(ok=True, detail=f"{spec.name} answers at {url}")
    return Check(
        ok=False,
        detail=f"{spec.name} did not answer at {url} within {APP_CHECK_TIMEOUT_S:g} s: {START_APPS}, "
        f"or check {spec.port_setting()}",
    )


def _status(checks: ReadyChecks, response: Response) -> HealthStatus:
    healthy = all(check.ok for check in vars(checks).values())
    response.status_code = 200 if healthy else 503
    return "ok" if healthy else "unavailable"


@router.get(
    "/readyz",
    summary="Readiness of the API process",
    responses={503: {"model": Ready, "description": "PostgreSQL or Kafka did not answer."}},
)
async def readyz(held: ResourcesDep, response: Response) -> Ready:
    """200 `ok` when PostgreSQL and Kafka answer within HEALTH_CHECK_TIMEOUT_S each, else 503: whether
    this API process can serve requests, whatever the ledger and metrics consumer are doing."""
    postgres, kafka = await asyncio.gather(_postgres(held), _kafka(held))
    checks = ReadyChecks(postgres=postgres, kafka=kafka)
    return Ready(status=_status(checks, response), checks=checks)


@router.get(
    "/healthz",
    summary="Health of the sandbox: API, ledger and metrics",
    responses={503: {"model": Health, "description": "A component did not answer; its detail says what to do."}},
)
async def healthz(held: ResourcesDep, response: Response) -> Health:
    """200 `ok` when the API's PostgreSQL and Kafka, the ledger and the metrics consumer all answer
    (checked in parallel, each within its bound), else 503 with each component's detail."""
    postgres, kafka, ledger, metrics = await asyncio.gather(
        _postgres(held), _kafka(held), _app(held, LEDGER), _app(held, METRICS)
    )
    checks = HealthChecks(postgres=postgres, kafka=kafka, ledger=ledger, metrics=metrics)
    return Health(status=_status(checks, response), checks=checks)
