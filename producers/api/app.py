"""The HTTP API's application: `create_app(settings)` (issue 9, item 2).

The lifespan owns the API's resources (producers/api/resources.py): it opens them at start —
unless the caller opened them already and hands them over, as `python -m producers.api` does to
report an unreachable service before the server starts — and closes them at shutdown. Requests
reach them only through dependencies (producers/api/deps.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI

from infra.settings import Settings
from producers.api.docs_ui import install_docs
from producers.api.metrics import install_metrics
from producers.api.problems import BODY_BYTES_MAX, BodySizeLimit, install_problem_handlers, problem_openapi
from producers.api.resources import Resources
from producers.api.routers import (
    accounts,
    events,
    health,
    listings,
    magic_values,
    payment_requests,
    payments,
    qr_codes,
    refunds,
    test_clocks,
    top_ups,
    webhook_endpoints,
)
from producers.api.scheduler import run_scheduler

TITLE: Final = "KP payments sandbox API"
VERSION: Final = "0.1.0"
SCHEDULER_STOP_TIMEOUT_S: Final = 10.0  # the scheduler finishes the row it is doing, then stops
DESCRIPTION: Final = """A sandbox payments API for startups in Khyber Pakhtunkhwa: accounts, top-ups,
payments (automatic or manual capture), refunds and request-to-pay today; magic values to come (issue 9).

Every POST takes an optional `Idempotency-Key` (1–255 printable ASCII characters, kept 24 hours per
tenant): sending the same request again with the same key answers the first response again, with
`Idempotent-Replayed: true`, and does nothing twice.

A payment is `processing` until the ledger decides: then `succeeded`, `failed` (with the ledger's
`failure_code`) or, when only authorised, `requires_capture` → capture (`succeeded`) or cancel
(`canceled`), or `expired` when nobody captures it in time. `GET /v1/payments/{id}?wait=N` waits
up to N seconds for that decision.

A refund pays (part of) a `succeeded` payment back: `processing` → `succeeded` (the payment's
`amount_refunded` grows; the payment stays `succeeded`) or `failed`. A payment request is `pending`
until the payer approves it (a payment is made), declines it, or it passes `expires_at` (`expired`).

Authenticate with a secret key from `kpsandbox tenants create NAME`: `Authorization: Bearer sk_test_…`.
Amounts are integer paisa (PKR). Every error is `application/problem+json` (RFC 9457) with a
stable `code` and the offending `param`. Mobile numbers are never stored or returned: only keyed tokens.
"""


def create_app(settings: Settings, *, resources: Resources | None = None) -> FastAPI:
    """The API over these settings. Its lifespan opens the resources (or takes over `resources`,
    already open) and closes them at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        held = resources if resources is not None else await Resources.open(settings)
        app.state.resources = held
        stop = asyncio.Event()
        scheduled = asyncio.create_task(run_scheduler(held.pool, held.publish, stop=stop), name="api-scheduler")
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(scheduled, SCHEDULER_STOP_TIMEOUT_S)
            await held.close()

    # /docs and /redoc are installed from local assets (docs_ui.py): FastAPI's own load from a CDN.
    app = FastAPI(
        title=TITLE, version=VERSION, description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_docs(app)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=BODY_BYTES_MAX)
    install_metrics(app)  # after the other middleware: it is outermost and times them too
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(payments.router)
    app.include_router(top_ups.router)
    app.include_router(payment_requests.router)
    app.include_router(refunds.router)
    app.include_router(magic_values.router)
    app.include_router(test_clocks.router)
    app.include_router(qr_codes.router)
    app.include_router(listings.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(events.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
