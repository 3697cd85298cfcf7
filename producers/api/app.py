"""The HTTP API's application: `create_app(settings)` (issue 9, item 2).

The lifespan owns the API's resources (producers/api/resources.py): it opens them at start —
unless the caller opened them already and hands them over, as `python -m producers.api` does to
report an unreachable service before the server starts — and closes them at shutdown. Requests
reach them only through dependencies (producers/api/deps.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI

from infra.settings import Settings
from producers.api.problems import BODY_BYTES_MAX, BodySizeLimit, install_problem_handlers, problem_openapi
from producers.api.resources import Resources
from producers.api.routers import accounts, health, payments, top_ups

TITLE: Final = "KP payments sandbox API"
VERSION: Final = "0.1.0"
DESCRIPTION: Final = """A sandbox payments API for startups in Khyber Pakhtunkhwa: accounts, top-ups and
payments (automatic or manual capture) today; refunds and magic values to come (issue 9).

Every POST takes an optional `Idempotency-Key` (1–255 printable ASCII characters, kept 24 hours per
tenant): sending the same request again with the same key answers the first response again, with
`Idempotent-Replayed: true`, and does nothing twice.

A payment is `processing` until the ledger decides: then `succeeded`, `failed` (with the ledger's
`failure_code`) or, when only authorised, `requires_capture` → capture (`succeeded`) or cancel
(`canceled`), or `expired` when nobody captures it in time. `GET /v1/payments/{id}?wait=N` waits
up to N seconds for that decision.

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
        try:
            yield
        finally:
            await held.close()

    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION, lifespan=lifespan)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=BODY_BYTES_MAX)
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(payments.router)
    app.include_router(top_ups.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
