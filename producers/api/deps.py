"""FastAPI dependencies: the running API's resources, the authenticated tenant, the services.

Nothing here is global: everything comes from the app's state, set by its lifespan (app.py).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producers.api.accounts import Accounts
from producers.api.events import Events
from producers.api.listings import Listings
from producers.api.payment_requests import PaymentRequests
from producers.api.payments import Payments
from producers.api.problems import NO_KEY, UNKNOWN_KEY, unauthorized
from producers.api.qr_codes import QrCodes
from producers.api.refunds import Refunds
from producers.api.resources import DB_UNAVAILABLE, Resources, unavailable
from producers.api.tenants import Tenant, Tenants
from producers.api.test_clocks import TestClocks
from producers.api.top_ups import TopUps
from producers.api.webhook_endpoints import WebhookEndpoints

BEARER: Final = HTTPBearer(
    auto_error=False,
    scheme_name="SecretKey",
    description="A sandbox secret key from `kpsandbox tenants create NAME`: `Authorization: Bearer sk_test_…`.",
)


async def resources(request: Request) -> Resources:
    """The resources the lifespan opened."""
    opened: Resources = request.app.state.resources
    return opened


ResourcesDep = Annotated[Resources, Depends(resources)]


async def current_tenant(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)], held: ResourcesDep
) -> Tenant:
    """The tenant whose secret key the request carries; 401 when it is missing, unknown or revoked."""
    if credentials is None:
        raise unauthorized(NO_KEY)
    try:
        tenant = await Tenants(held.pool).authenticate(key=credentials.credentials)
    except DB_UNAVAILABLE as error:
        raise unavailable("PostgreSQL") from error
    if tenant is None:
        raise unauthorized(UNKNOWN_KEY)
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]


async def secret_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> str:
    """The secret key the request carries, not yet checked: for a route that authenticates in the same
    query that reads what it asks for (GET /v1/payments/{id}). 401 when there is none."""
    if credentials is None:
        raise unauthorized(NO_KEY)
    return credentials.credentials


SecretKeyDep = Annotated[str, Depends(secret_key)]


async def accounts(held: ResourcesDep) -> Accounts:
    """The accounts service over the running API's resources."""
    return Accounts(pool=held.pool, publish=held.publish, key=held.key)


AccountsDep = Annotated[Accounts, Depends(accounts)]


async def payments(held: ResourcesDep) -> Payments:
    """The payments service over the running API's resources."""
    return Payments(pool=held.pool, publish=held.publish, key=held.key, changes=held.changes)


PaymentsDep = Annotated[Payments, Depends(payments)]


async def test_clocks(held: ResourcesDep) -> TestClocks:
    """The test clocks service over the running API's resources."""
    return TestClocks(pool=held.pool)


TestClocksDep = Annotated[TestClocks, Depends(test_clocks)]


async def top_ups(held: ResourcesDep) -> TopUps:
    """The top-ups service over the running API's resources."""
    return TopUps(pool=held.pool, publish=held.publish)


TopUpsDep = Annotated[TopUps, Depends(top_ups)]


async def qr_codes(held: ResourcesDep) -> QrCodes:
    """The QR codes service over the running API's resources."""
    return QrCodes(pool=held.pool)


QrCodesDep = Annotated[QrCodes, Depends(qr_codes)]


async def listings(held: ResourcesDep) -> Listings:
    """The listings (accounts, payments, transfers) over the running API's resources."""
    return Listings(pool=held.pool)


ListingsDep = Annotated[Listings, Depends(listings)]


async def payment_requests(held: ResourcesDep, payments: PaymentsDep) -> PaymentRequests:
    """The request-to-pay service over the running API's resources (approving makes a payment)."""
    return PaymentRequests(pool=held.pool, key=held.key, payments=payments)


PaymentRequestsDep = Annotated[PaymentRequests, Depends(payment_requests)]


async def refunds(held: ResourcesDep) -> Refunds:
    """The refunds service over the running API's resources."""
    return Refunds(pool=held.pool, publish=held.publish)


RefundsDep = Annotated[Refunds, Depends(refunds)]


async def webhook_endpoints(held: ResourcesDep) -> WebhookEndpoints:
    """The webhook endpoints service over the running API's resources (it seals secrets with the key)."""
    return WebhookEndpoints(pool=held.pool, key=held.key)


WebhookEndpointsDep = Annotated[WebhookEndpoints, Depends(webhook_endpoints)]


async def events(held: ResourcesDep) -> Events:
    """The events and delivery log service over the running API's resources (read-only)."""
    return Events(pool=held.pool)


EventsDep = Annotated[Events, Depends(events)]
